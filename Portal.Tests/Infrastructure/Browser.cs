using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Portal.Tests.Infrastructure;

/// <summary>Every browser test joins this collection, so one Chromium process serves them all, one test at a time.</summary>
[CollectionDefinition(Name)]
public sealed class BrowserCollection : ICollectionFixture<BrowserFixture>
{
    public const string Name = "Browser";
}

/// <summary>
/// Debian's Chromium driven by Playwright. Playwright never downloads a browser here: the executable comes from
/// PORTAL_CHROMIUM or /usr/bin/chromium, and a missing one fails every browser test (it never skips).
/// </summary>
public sealed class BrowserFixture : IAsyncLifetime
{
    /// <summary>Generous for a loaded 2-core machine, yet bounded so a broken page fails instead of hanging.</summary>
    public const int TimeoutMs = 15_000;

    public static readonly string[] ChromiumArgs =
    [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic",
    ];

    private IPlaywright? playwright;
    private IBrowser? browser;

    public IBrowser Browser => browser ?? throw new InvalidOperationException("Chromium did not start.");

    public async Task InitializeAsync()
    {
        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        var path = Environment.GetEnvironmentVariable("PORTAL_CHROMIUM") is { Length: > 0 } p ? p : "/usr/bin/chromium";
        if (!File.Exists(path))
            throw new InvalidOperationException(
                $"Chromium is required for the browser tests and was not found at {path}. Run ./test.sh (it installs Debian's chromium) or set PORTAL_CHROMIUM to a Chromium executable.");
        SetDefaultExpectTimeout(TimeoutMs);
        playwright = await Playwright.CreateAsync();
        browser = await playwright.Chromium.LaunchAsync(new BrowserTypeLaunchOptions
        {
            ExecutablePath = path, Headless = true, Args = ChromiumArgs, Timeout = 60_000,
        });
    }

    /// <summary>A fresh browser context (own cookies and storage) on the given running portal.</summary>
    public async Task<BrowserSession> OpenAsync(PortalApp app, ITestOutputHelper output, [CallerMemberName] string test = "")
    {
        var baseUrl = app.BaseUrl ?? app.StartKestrel();
        var context = await Browser.NewContextAsync(new BrowserNewContextOptions
        {
            BaseURL = baseUrl, ViewportSize = new ViewportSize { Width = 1366, Height = 850 }, Locale = "en-US", TimezoneId = "UTC",
        });
        context.SetDefaultTimeout(TimeoutMs);
        context.SetDefaultNavigationTimeout(TimeoutMs);
        var page = await context.NewPageAsync();
        return new BrowserSession(app, context, page, output, test);
    }

    public async Task DisposeAsync()
    {
        if (browser is not null) await browser.CloseAsync();
        playwright?.Dispose();
    }
}

/// <summary>One test's browser context and page, with the page's console errors and uncaught exceptions recorded.</summary>
public sealed class BrowserSession : IAsyncDisposable
{
    public PortalApp App { get; }
    public IBrowserContext Context { get; }
    public IPage Page { get; }
    public ConcurrentQueue<string> ConsoleErrors { get; } = new();
    public ConcurrentQueue<string> UncaughtErrors { get; } = new();
    private readonly List<Regex> allowedConsoleErrors = [];
    private readonly ITestOutputHelper output;
    private readonly string test;

    internal BrowserSession(PortalApp app, IBrowserContext context, IPage page, ITestOutputHelper output, string test)
    {
        App = app; Context = context; Page = page; this.output = output; this.test = test;
        page.Console += (_, m) =>
        {
            if (m.Type != "error") return;
            var line = $"{m.Text} ({m.Location})";
            lock (allowedConsoleErrors) if (allowedConsoleErrors.Any(r => r.IsMatch(line))) return;
            ConsoleErrors.Enqueue(line);
        };
        page.PageError += (_, e) => UncaughtErrors.Enqueue(e);
    }

    /// <summary>
    /// Runs the test body. On failure it keeps a screenshot and adds the browser's console and the server's errors
    /// to the message; on success it still fails when the page threw or logged an error, because Blazor's client
    /// script is a 9.0 script on a 10.0 server and a protocol mismatch shows up only there.
    /// </summary>
    public async Task RunAsync(Func<IPage, Task> body)
    {
        try
        {
            await body(Page);
        }
        catch (Exception e)
        {
            var shot = await TryScreenshotAsync($"FAILED-{test}");
            throw new Xunit.Sdk.XunitException($"{e.Message}\nAt: {Page.Url}\nScreenshot: {shot}\n{Diagnostics()}\n--- original ---\n{e}");
        }
        if (!UncaughtErrors.IsEmpty || !ConsoleErrors.IsEmpty || App.Logs.Errors.Length > 0)
            throw new Xunit.Sdk.XunitException($"The test passed but errors were reported.\n{Diagnostics()}");
    }

    /// <summary>
    /// Accepts console errors matching <paramref name="pattern"/>, e.g. Chromium's "Failed to load resource" line for
    /// a page the test expects to answer 403 or 404.
    /// </summary>
    public void AllowConsoleError(string pattern)
    {
        lock (allowedConsoleErrors) allowedConsoleErrors.Add(new Regex(pattern));
    }

    private string Diagnostics() =>
        $"Uncaught page errors:\n{string.Join("\n", UncaughtErrors)}\nConsole errors:\n{string.Join("\n", ConsoleErrors)}\nServer errors:\n{App.Logs.Errors}";

    /// <summary>Opens a portal address (relative, e.g. "/p/{id}/members").</summary>
    public async Task GotoAsync(string path) => await Page.GotoAsync(path);

    /// <summary>
    /// Waits until the Blazor circuit has rendered the page interactively (MainLayout sets data-interactive only
    /// then), so clicks reach live event handlers instead of the prerendered HTML.
    /// </summary>
    public async Task WaitInteractiveAsync() =>
        await Expect(Page.Locator("main[data-interactive='true']")).ToBeVisibleAsync();

    /// <summary>Signs in through the real form and waits for the portal shell to become interactive.</summary>
    public async Task SignInAsync(string email, string password = TestUsers.Password)
    {
        await GotoAsync("/Account/Login");
        await Page.GetByLabel("E-mail").FillAsync(email);
        await Page.GetByLabel("Password").FillAsync(password);
        await Page.Locator("#sign-in").ClickAsync();
        await Expect(Page).Not.ToHaveURLAsync(new Regex("/Account/Login"));
        await WaitInteractiveAsync();
    }

    /// <summary>Clicks a Radzen DropDown and picks the item whose text starts with <paramref name="text"/>.</summary>
    public async Task ChooseAsync(ILocator dropdown, string text)
    {
        await dropdown.ClickAsync();
        var item = Page.Locator(".rz-dropdown-panel:visible .rz-dropdown-item", new() { HasTextRegex = new Regex("^\\s*" + Regex.Escape(text)) });
        await item.First.ClickAsync();
        // The choice is applied by a round trip to the server; wait until the dropdown shows it, so a click that
        // follows (e.g. a submit) cannot overtake it.
        await Expect(dropdown.Locator(".rz-dropdown-label").First).ToContainTextAsync(text);
    }

    /// <summary>Answers the open Radzen confirm dialog with the button named <paramref name="button"/>.</summary>
    public async Task ConfirmAsync(string button)
    {
        var dialog = Page.GetByRole(AriaRole.Alertdialog);
        await Expect(dialog).ToBeVisibleAsync();
        await dialog.GetByRole(AriaRole.Button, new() { Name = button, Exact = true }).ClickAsync();
        await Expect(dialog).ToBeHiddenAsync();
    }

    /// <summary>Closes the toasts Radzen shows after an action, so they do not cover the page in a screenshot.</summary>
    public async Task DismissNotificationsAsync()
    {
        var close = Page.Locator(".rz-notification-item .rz-notification-close");
        while (await close.CountAsync() > 0)
        {
            try { await close.First.ClickAsync(new LocatorClickOptions { Timeout = 2_000 }); }
            catch (TimeoutException) { } // it closed by itself meanwhile
        }
        await Expect(Page.Locator(".rz-notification-item")).ToHaveCountAsync(0);
    }

    /// <summary>The text of the visible toasts (Radzen notifications).</summary>
    public ILocator Notifications => Page.Locator(".rz-notification-item");

    /// <summary>
    /// Saves a 1366x850 screenshot to the test output folder and, when PORTAL_SCREENSHOTS=1, to docs/screenshots for
    /// the README (off by default so CI does not rewrite committed files).
    /// </summary>
    public Task ScreenshotAsync(string name) => SaveScreenshotAsync(name, Environment.GetEnvironmentVariable("PORTAL_SCREENSHOTS") == "1");

    private async Task SaveScreenshotAsync(string name, bool publish)
    {
        // Let Radzen's transitions settle so the picture shows the final state.
        await Page.WaitForLoadStateAsync(LoadState.NetworkIdle);
        var bytes = await Page.ScreenshotAsync(new PageScreenshotOptions { Type = ScreenshotType.Png, Animations = ScreenshotAnimations.Disabled });
        var local = Path.Combine(AppContext.BaseDirectory, "screenshots", $"{name}.png");
        Directory.CreateDirectory(Path.GetDirectoryName(local)!);
        await File.WriteAllBytesAsync(local, bytes);
        output.WriteLine($"Screenshot: {local}");
        if (publish)
        {
            var docs = Path.Combine(RepositoryRoot(), "docs", "screenshots", $"{name}.png");
            Directory.CreateDirectory(Path.GetDirectoryName(docs)!);
            await File.WriteAllBytesAsync(docs, bytes);
        }
    }

    private async Task<string> TryScreenshotAsync(string name)
    {
        try { await SaveScreenshotAsync(name, publish: false); return Path.Combine(AppContext.BaseDirectory, "screenshots", $"{name}.png"); }
        catch (PlaywrightException e) { return $"(none: {e.Message})"; }
    }

    private static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Portal.sln"))) return dir.FullName;
        throw new InvalidOperationException("Portal.sln not found above the test binaries.");
    }

    public async ValueTask DisposeAsync() => await Context.CloseAsync();
}
