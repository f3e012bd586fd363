namespace Portal.Domain.Operations;

/// <summary>One execution of a background job, written by whichever process ran it.</summary>
public sealed class JobRun
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public required string JobName { get; set; }
    public required string JobGroup { get; set; }
    public string? TriggerName { get; set; }
    public required string FireInstanceId { get; set; }
    public DateTimeOffset? ScheduledFor { get; set; }
    public DateTimeOffset StartedAt { get; set; }
    public DateTimeOffset? FinishedAt { get; set; }
    /// <summary>running | succeeded | failed</summary>
    public string Outcome { get; set; } = "running";
    public string? Message { get; set; }
    public required string InstanceName { get; set; }
}
