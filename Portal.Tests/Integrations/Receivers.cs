using System.Collections.Concurrent;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Portal.Domain.Integrations;

namespace Portal.Tests.Integrations;

public sealed record Received(int Attempt, string Path, Dictionary<string, string> Headers, string Body, int AnsweredWith);

/// <summary>
/// A real HTTP receiver on 127.0.0.1 (Kestrel). <see cref="Behave"/> decides each answer from the attempt number:
/// a status code, or <see cref="Hang"/> to never answer within the sender's timeout. Gzip bodies are decompressed.
/// </summary>
public sealed class HttpReceiver : IAsyncDisposable
{
    public const int Hang = -1;
    private readonly WebApplication app;
    private int attempts;
    public ConcurrentQueue<Received> Requests { get; } = new();
    public Func<int, Received, int> Behave { get; set; } = (_, _) => 200;
    public string ResponseBody { get; set; } = "ok";
    public string Url { get; }

    private HttpReceiver(WebApplication app, string url) { this.app = app; Url = url; }

    public static async Task<HttpReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel().UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        HttpReceiver? self = null;
        app.Run(async ctx =>
        {
            var r = self!;
            Stream body = ctx.Request.Body;
            if (ctx.Request.Headers.ContentEncoding.ToString() == "gzip") body = new GZipStream(body, CompressionMode.Decompress);
            var text = await new StreamReader(body, Encoding.UTF8).ReadToEndAsync();
            var n = Interlocked.Increment(ref r.attempts);
            var headers = ctx.Request.Headers.ToDictionary(h => h.Key.ToLowerInvariant(), h => h.Value.ToString());
            var probe = new Received(n, ctx.Request.Path, headers, text, 0);
            var status = r.Behave(n, probe);
            if (status == Hang)
            {
                try { await Task.Delay(TimeSpan.FromSeconds(30), ctx.RequestAborted); } catch (OperationCanceledException) { }
                r.Requests.Enqueue(probe with { AnsweredWith = Hang });
                return;
            }
            r.Requests.Enqueue(probe with { AnsweredWith = status });
            ctx.Response.StatusCode = status;
            await ctx.Response.WriteAsync(r.ResponseBody);
        });
        await app.StartAsync();
        var url = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        self = new HttpReceiver(app, url.TrimEnd('/'));
        return self;
    }

    public List<Received> Accepted => Requests.Where(r => r.AnsweredWith is >= 200 and < 300).ToList();

    public async ValueTask DisposeAsync() => await app.DisposeAsync();
}

/// <summary>A syslog receiver on 127.0.0.1: reads each connection to its end, parses RFC 6587 octet-counted frames, then closes.</summary>
public sealed class SyslogReceiver : IAsyncDisposable
{
    private readonly TcpListener listener;
    private readonly CancellationTokenSource stop = new();
    private readonly Task loop;
    public ConcurrentQueue<string> Frames { get; } = new();
    public int Port { get; }
    public string Endpoint => $"127.0.0.1:{Port}";

    public SyslogReceiver()
    {
        listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        Port = ((IPEndPoint)listener.LocalEndpoint).Port;
        loop = Task.Run(AcceptAsync);
    }

    private async Task AcceptAsync()
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try { client = await listener.AcceptTcpClientAsync(stop.Token); }
            catch (Exception) { return; }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    var stream = client.GetStream();
                    var pending = new List<byte>();
                    var buffer = new byte[65536];
                    int n;
                    while ((n = await stream.ReadAsync(buffer)) > 0)
                    {
                        pending.AddRange(buffer.AsSpan(0, n).ToArray());
                        foreach (var f in SiemFormatting.ParseFrames(pending)) Frames.Enqueue(f);
                    }
                    if (pending.Count > 0) throw new InvalidDataException("A partial frame was left at the end of the connection.");
                }
            });
        }
    }

    public async ValueTask DisposeAsync()
    {
        stop.Cancel();
        listener.Stop();
        try { await loop; } catch { }
    }
}
