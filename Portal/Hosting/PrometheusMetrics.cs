using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text;

namespace Portal.Hosting;

/// <summary>
/// Serves /metrics in the Prometheus text exposition format from System.Diagnostics.Metrics instruments.
/// Written by hand: prometheus-net and the OpenTelemetry Prometheus exporter are not on our feed.
/// Counters and up-down counters are summed, gauges keep the last value, histograms expose _count and _sum.
/// </summary>
public sealed class PrometheusMetrics : IDisposable
{
    private static readonly string[] MeterPrefixes = ["Portal", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "System.Runtime", "Microsoft.EntityFrameworkCore"];

    private readonly MeterListener listener = new();
    private readonly ConcurrentDictionary<(Instrument Instrument, string Labels), Series> series = new();

    private sealed class Series { public double Value; public double Sum; public long Count; }

    public PrometheusMetrics()
    {
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (MeterPrefixes.Any(p => instrument.Meter.Name.StartsWith(p, StringComparison.Ordinal))) l.EnableMeasurementEvents(instrument);
        };
        listener.SetMeasurementEventCallback<long>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<int>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<double>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<float>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<short>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<byte>((i, v, tags, _) => Record(i, v, tags));
        listener.SetMeasurementEventCallback<decimal>((i, v, tags, _) => Record(i, (double)v, tags));
        listener.Start();
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var labels = FormatLabels(tags);
        var s = series.GetOrAdd((instrument, labels), _ => new Series());
        lock (s)
        {
            switch (instrument)
            {
                case ObservableGauge<long> or ObservableGauge<int> or ObservableGauge<double> or Gauge<long> or Gauge<int> or Gauge<double>:
                    s.Value = value; break;
                case ObservableCounter<long> or ObservableCounter<int> or ObservableCounter<double> or ObservableUpDownCounter<long> or ObservableUpDownCounter<int> or ObservableUpDownCounter<double>:
                    s.Value = value; break; // observable instruments report totals
                case Histogram<long> or Histogram<int> or Histogram<double> or Histogram<float>:
                    s.Sum += value; s.Count++; break;
                default:
                    s.Value += value; break;
            }
        }
    }

    public string Render()
    {
        listener.RecordObservableInstruments();
        var sb = new StringBuilder();
        foreach (var group in series.GroupBy(kv => kv.Key.Instrument).OrderBy(g => g.Key.Meter.Name).ThenBy(g => g.Key.Name))
        {
            var instrument = group.Key;
            var name = SanitizeName(instrument.Name + (instrument.Unit is { Length: > 0 } u && u != "{request}" && !u.StartsWith('{') ? "_" + u : ""));
            var isHistogram = instrument.GetType().IsGenericType && instrument.GetType().GetGenericTypeDefinition() == typeof(Histogram<>);
            var isCounter = instrument.GetType().Name.StartsWith("Counter", StringComparison.Ordinal) || instrument.GetType().Name.StartsWith("ObservableCounter", StringComparison.Ordinal);
            if (instrument.Description is { Length: > 0 } d) sb.Append("# HELP ").Append(name).Append(' ').Append(EscapeHelp(d)).Append('\n');
            sb.Append("# TYPE ").Append(name).Append(isHistogram ? " summary" : isCounter ? " counter" : " gauge").Append('\n');
            foreach (var (key, s) in group)
            {
                lock (s)
                {
                    if (isHistogram)
                    {
                        sb.Append(name).Append("_sum").Append(key.Labels).Append(' ').Append(s.Sum.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
                        sb.Append(name).Append("_count").Append(key.Labels).Append(' ').Append(s.Count.ToString(CultureInfo.InvariantCulture)).Append('\n');
                    }
                    else sb.Append(name).Append(isCounter && !name.EndsWith("_total", StringComparison.Ordinal) ? "_total" : "").Append(key.Labels).Append(' ').Append(s.Value.ToString("R", CultureInfo.InvariantCulture)).Append('\n');
                }
            }
        }
        return sb.ToString();
    }

    private static string FormatLabels(ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        if (tags.Length == 0) return "";
        var pairs = new List<(string, string)>(tags.Length);
        foreach (var t in tags) pairs.Add((SanitizeName(t.Key), Convert.ToString(t.Value, CultureInfo.InvariantCulture) ?? ""));
        pairs.Sort((a, b) => string.CompareOrdinal(a.Item1, b.Item1));
        return "{" + string.Join(',', pairs.Select(p => $"{p.Item1}=\"{EscapeLabel(p.Item2)}\"")) + "}";
    }

    public static string SanitizeName(string name)
    {
        var chars = name.Select(c => char.IsAsciiLetterOrDigit(c) || c == '_' || c == ':' ? c : '_').ToArray();
        if (chars.Length > 0 && char.IsAsciiDigit(chars[0])) return "_" + new string(chars);
        return new string(chars);
    }

    private static string EscapeLabel(string v) => v.Replace("\\", "\\\\").Replace("\"", "\\\"").Replace("\n", "\\n");
    private static string EscapeHelp(string v) => v.Replace("\\", "\\\\").Replace("\n", "\\n");

    public void Dispose() => listener.Dispose();
}
