using System.Globalization;

namespace Portal.Jobs;

/// <summary>
/// Plain-English text for the cron shapes the portal's jobs use. Hand-written: no cron-description package is on
/// our feed. Anything it does not recognise is shown as the raw expression, so it never says something wrong.
/// </summary>
public static class CronText
{
    public static string Describe(string? cron)
    {
        if (string.IsNullOrWhiteSpace(cron)) return "On demand only";
        var f = cron.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (f.Length is < 6 or > 7 || (f.Length == 7 && f[6] != "*")) return $"Custom schedule ({cron})";
        string sec = f[0], min = f[1], hour = f[2], dom = f[3], month = f[4], dow = f[5];
        var everyDay = (dom is "*" or "?") && month == "*" && (dow is "*" or "?");

        if (everyDay && Step(sec) is { } s && min == "*" && hour == "*") return s == 1 ? "Every second" : $"Every {s} seconds";
        if (everyDay && sec == "0" && Step(min) is { } m && hour == "*") return m == 1 ? "Every minute" : $"Every {m} minutes";
        if (everyDay && sec == "0" && Number(min) is { } mm && hour == "*")
            return mm == 0 ? "Every hour, on the hour" : $"Every hour at {mm} minute(s) past";
        if (everyDay && sec == "0" && Number(min) is { } m2 && Step(hour) is { } h) return h == 1 ? $"Every hour at {m2} minute(s) past" : $"Every {h} hours at {m2} minute(s) past";
        if (sec == "0" && Number(min) is { } m3 && Number(hour) is { } h3 && month == "*")
        {
            var at = $"{h3:00}:{m3:00} UTC";
            if (everyDay) return $"Every day at {at}";
            if (dom is "?" or "*" && Days(dow) is { } days) return $"Every {days} at {at}";
            if (dow is "?" && Number(dom) is { } d) return $"Monthly on day {d} at {at}";
        }
        return $"Custom schedule ({cron})";
    }

    private static int? Number(string field) => int.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;

    /// <summary>"*" is a step of 1; "0/N" and "*/N" are steps of N.</summary>
    private static int? Step(string field)
    {
        if (field == "*") return 1;
        var slash = field.IndexOf('/');
        if (slash < 0 || field[..slash] is not ("0" or "*")) return null;
        return Number(field[(slash + 1)..]) is { } n and > 0 ? n : null;
    }

    private static readonly Dictionary<string, string> DayNames = new(StringComparer.OrdinalIgnoreCase)
    {
        ["MON"] = "Monday", ["TUE"] = "Tuesday", ["WED"] = "Wednesday", ["THU"] = "Thursday", ["FRI"] = "Friday", ["SAT"] = "Saturday", ["SUN"] = "Sunday",
        ["2"] = "Monday", ["3"] = "Tuesday", ["4"] = "Wednesday", ["5"] = "Thursday", ["6"] = "Friday", ["7"] = "Saturday", ["1"] = "Sunday",
    };

    private static string? Days(string field)
    {
        if (field.Equals("MON-FRI", StringComparison.OrdinalIgnoreCase)) return "weekday";
        var names = new List<string>();
        foreach (var part in field.Split(','))
        {
            if (!DayNames.TryGetValue(part, out var name)) return null;
            names.Add(name);
        }
        return string.Join(", ", names);
    }
}
