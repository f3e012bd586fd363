namespace Portal.Domain.Compliance;

/// <summary>The report types a compliance officer can generate.</summary>
public static class ReportTypes
{
    public const string Soc2 = "soc2";
    public const string Gdpr = "gdpr";
    public const string Hipaa = "hipaa";
    public const string Custom = "custom";

    public static readonly IReadOnlyList<string> All = [Soc2, Gdpr, Hipaa, Custom];

    public static string Title(string type) => type switch
    {
        Soc2 => "SOC 2 access review",
        Gdpr => "GDPR personal data access",
        Hipaa => "HIPAA PHI access",
        Custom => "Custom audit report",
        _ => type,
    };
}

public static class ReportStatus
{
    public const string Queued = "queued";
    public const string Running = "running";
    public const string Ready = "ready";
    public const string Failed = "failed";
}

public static class ReportFrequency
{
    public const string Monthly = "monthly";
    public const string Quarterly = "quarterly";
    public static readonly IReadOnlyList<string> All = [Monthly, Quarterly];
}

/// <summary>One generated (or queued) report (table compliance_reports).</summary>
public sealed class ComplianceReport
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public string ReportType { get; set; } = "";
    public string Title { get; set; } = "";
    public DateTimeOffset PeriodStart { get; set; }
    /// <summary>Exclusive.</summary>
    public DateTimeOffset PeriodEnd { get; set; }
    /// <summary>JSON of <see cref="ReportParameters"/>, as requested.</summary>
    public string ParametersJson { get; set; } = "{}";
    public string Status { get; set; } = ReportStatus.Queued;
    /// <summary>0..100.</summary>
    public int Progress { get; set; }
    public string? ProgressMessage { get; set; }
    /// <summary>Null for a scheduled report.</summary>
    public Guid? RequestedBy { get; set; }
    public string? RequestedByEmail { get; set; }
    public Guid? ScheduleId { get; set; }
    /// <summary>Which software produced it ("Governance Portal compliance reports 1 (PDFsharp 6.5.0)").</summary>
    public string Generator { get; set; } = "";
    public DateTimeOffset RequestedAt { get; set; }
    public DateTimeOffset? StartedAt { get; set; }
    public DateTimeOffset? CompletedAt { get; set; }
    /// <summary>The process that claimed the generation (job worker instance or "portal").</summary>
    public string? ClaimedBy { get; set; }
    /// <summary>The audit chain's last seq when the report was requested: later events never change a report's data.</summary>
    public long MaxSeq { get; set; }
    public long EventCount { get; set; }
    public string? DataSha256 { get; set; }
    public string? PdfSha256 { get; set; }
    public long? PdfSize { get; set; }
    public string? SignerThumbprint { get; set; }
    public bool? ChainOk { get; set; }
    public string? Error { get; set; }
}

/// <summary>The signed PDF of a ready report (table compliance_report_files).</summary>
public sealed class ComplianceReportFile
{
    public Guid ReportId { get; set; }
    public Guid ProjectId { get; set; }
    public byte[] Pdf { get; set; } = [];
}

/// <summary>A recurring report (table compliance_report_schedules).</summary>
public sealed class ComplianceReportSchedule
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public Guid ProjectId { get; set; }
    public string ReportType { get; set; } = "";
    public string Frequency { get; set; } = ReportFrequency.Monthly;
    public bool Enabled { get; set; } = true;
    public Guid CreatedBy { get; set; }
    public DateTimeOffset CreatedAt { get; set; }
    /// <summary>When the next report is due: the first instant after the period it covers.</summary>
    public DateTimeOffset NextRunAt { get; set; }
    public DateTimeOffset? LastRunAt { get; set; }
    public Guid? LastReportId { get; set; }
}

/// <summary>The portal's report-signing certificate, PKCS#12 encrypted at rest (table report_signing_certificates).</summary>
public sealed class ReportSigningCertificate
{
    public Guid Id { get; set; } = Guid.CreateVersion7();
    public string Subject { get; set; } = "";
    public string Thumbprint { get; set; } = "";
    public DateTimeOffset NotBefore { get; set; }
    public DateTimeOffset NotAfter { get; set; }
    public string PfxProtected { get; set; } = "";
    public DateTimeOffset CreatedAt { get; set; }
}
