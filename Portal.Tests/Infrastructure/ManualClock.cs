namespace Portal.Tests.Infrastructure;

/// <summary>A clock tests move by hand.</summary>
public sealed class ManualClock(DateTimeOffset start) : TimeProvider
{
    private DateTimeOffset now = start;
    public ManualClock() : this(new DateTimeOffset(2026, 11, 1, 9, 0, 0, TimeSpan.Zero)) { }
    /// <summary>When set, every reading moves the clock on by this much, so records written in a row get distinct, ordered times.</summary>
    public TimeSpan Tick { get; set; }

    public override DateTimeOffset GetUtcNow()
    {
        var value = now;
        now += Tick;
        return value;
    }
    public void Advance(TimeSpan by) => now += by;
    public void Set(DateTimeOffset value) => now = value;
}
