using System.Globalization;
using PdfSharp;
using PdfSharp.Drawing;
using PdfSharp.Pdf;

namespace Portal.Domain.Compliance;

/// <summary>
/// Lays out a <see cref="ReportData"/> on A4 pages with PDFsharp's XGraphics (MigraDoc is not on the feed): cover,
/// executive summary with headline figures and two vector charts, one section per table (tables break across pages and
/// repeat their header), and a final integrity page. Page numbers ("page X of Y") are stamped in a second pass, once
/// the page count is known. Everything is drawn to stay readable in greyscale: series differ by fill density and
/// hatching and are labelled, never by colour alone.
/// </summary>
public sealed class ReportPdfRenderer
{
    private const double PageW = 595.28, PageH = 841.89, Left = 50, Right = PageW - 50, Top = 64, Bottom = PageH - 58;
    private const double ContentW = Right - Left;

    private static readonly XColor Ink = XColor.FromArgb(33, 37, 41);
    private static readonly XColor Muted = XColor.FromArgb(95, 99, 104);
    private static readonly XColor Rule = XColor.FromArgb(190, 194, 198);
    private static readonly XColor Zebra = XColor.FromArgb(243, 244, 246);
    private static readonly XColor HeaderFill = XColor.FromArgb(52, 58, 64);
    private static readonly XColor Accent = XColor.FromArgb(31, 78, 140);
    private static readonly XColor OkFill = XColor.FromArgb(143, 170, 210);
    private static readonly XColor DeniedFill = XColor.FromArgb(150, 60, 30);

    // Created once the font resolver is installed (XFont resolves its face on construction).
    private XFont title = null!, h1 = null!, h2 = null!, body = null!, small = null!, smallBold = null!, cell = null!, cellBold = null!, big = null!, mono = null!;

    private PdfDocument doc = null!;
    private XGraphics gfx = null!;
    private double y;
    private ReportData data = null!;
    private string dataHash = "";
    private string? thumbprint;

    private static XFont Font(double size, bool bold = false) => new(ReportFonts.Family, size, bold ? XFontStyleEx.Bold : XFontStyleEx.Regular);

    /// <summary>Builds the document; the caller saves it (signed) with <see cref="ReportSigner"/>.</summary>
    public PdfDocument Render(ReportData report, string dataSha256, string? signerSubject, string? signerThumbprint = null)
    {
        dataHash = dataSha256;
        thumbprint = signerThumbprint is null ? null : string.Join(' ', signerThumbprint.Chunk(8).Select(c => new string(c)));
        ReportFonts.EnsureInstalled();
        (title, h1, h2, body, small, smallBold) = (Font(22, true), Font(15, true), Font(11.5, true), Font(9.5), Font(8), Font(8, true));
        (cell, cellBold, big, mono) = (Font(8), Font(8, true), Font(17, true), new XFont(ReportFonts.Mono, 8.2));
        data = report;
        doc = new PdfDocument();
        doc.Info.Title = $"{report.Title} — {report.ProjectName}";
        doc.Info.Author = report.GeneratedBy;
        doc.Info.Subject = $"{Period()} · report {report.ReportId}";
        doc.Info.Creator = report.Generator;
        doc.Info.CreationDate = report.GeneratedAt.UtcDateTime;
        doc.PageLayout = PdfPageLayout.SinglePage;

        Cover(signerSubject);
        Summary();
        NewPage();
        foreach (var section in report.Sections) Section(section);
        Integrity(signerSubject);
        gfx.Dispose();
        Stamp();
        return doc;
    }

    // ------------------------------------------------------------------ pages

    private void NewPage(bool header = true)
    {
        gfx?.Dispose();
        var page = doc.AddPage();
        page.Size = PageSize.A4;
        gfx = XGraphics.FromPdfPage(page);
        y = Top;
        if (!header) return;
        gfx.DrawString($"{data.Title} · {data.ProjectName}", small, new XSolidBrush(Muted), new XRect(Left, 30, ContentW, 12), XStringFormats.TopLeft);
        gfx.DrawString(Period(), small, new XSolidBrush(Muted), new XRect(Left, 30, ContentW, 12), XStringFormats.TopRight);
        gfx.DrawLine(new XPen(Rule, 0.6), Left, 45, Right, 45);
    }

    private bool Fits(double height) => y + height <= Bottom;

    /// <summary>Second pass: footer with the report id and "page X of Y" on every page.</summary>
    private void Stamp()
    {
        var n = doc.PageCount;
        for (var i = 0; i < n; i++)
        {
            using var g = XGraphics.FromPdfPage(doc.Pages[i], XGraphicsPdfPageOptions.Append);
            g.DrawLine(new XPen(Rule, 0.6), Left, PageH - 44, Right, PageH - 44);
            g.DrawString($"Report {data.ReportId}", small, new XSolidBrush(Muted), new XRect(Left, PageH - 40, ContentW, 12), XStringFormats.TopLeft);
            g.DrawString($"page {i + 1} of {n}", small, new XSolidBrush(Muted), new XRect(Left, PageH - 40, ContentW, 12), XStringFormats.TopRight);
        }
    }

    private void Cover(string? signer)
    {
        NewPage(header: false);
        gfx.DrawRectangle(new XSolidBrush(Accent), 0, 0, PageW, 10);
        y = 150;
        Text("COMPLIANCE REPORT", smallBold, Muted);
        y += 6;
        Text(data.Title, title, Ink);
        y += 4;
        Text(data.ProjectName, h1, Accent);
        y += 30;
        var rows = new List<(string, string)>
        {
            ("Project", $"{data.ProjectName} ({data.ProjectId})"),
            ("Period", Period()),
            ("Generated by", data.GeneratedBy),
            ("Generated at", $"{data.GeneratedAt.UtcDateTime:yyyy-MM-dd HH:mm:ss} UTC"),
            ("Report id", data.ReportId.ToString()),
            ("Generator", data.Generator),
            ("Signed by", signer ?? "not signed"),
        };
        if (thumbprint is not null) rows.Add(("Certificate SHA-256", thumbprint));
        rows.AddRange(data.Filters.Select(f => ("Filter", f)));
        foreach (var (label, value) in rows)
        {
            gfx.DrawString(label, smallBold, new XSolidBrush(Muted), new XRect(Left, y, 110, 14), XStringFormats.TopLeft);
            var lines = Wrap(value, body, ContentW - 120);
            foreach (var line in lines) { gfx.DrawString(line, body, new XSolidBrush(Ink), new XRect(Left + 120, y, ContentW - 120, 14), XStringFormats.TopLeft); y += 13.5; }
            y += 5;
            gfx.DrawLine(new XPen(Zebra, 0.8), Left, y - 3, Right, y - 3);
        }
        y = PageH - 150;
        Paragraph("This report is generated from the project's tamper-evident audit trail. The PDF is digitally signed by the portal: " +
            "any change to the file invalidates the signature. The last page gives the SHA-256 of the data set and the result of the audit chain verification.", small, Muted);
        Paragraph("Confidential: contains audit data about people and systems. Share only with those entitled to review it.", smallBold, Muted);
    }

    private void Summary()
    {
        NewPage();
        Heading("Executive summary");
        var chain = data.Chain.Ok ? "The audit chain verified intact." : "WARNING: the audit chain verification FAILED (see the last page).";
        Paragraph(data.EventCount == 0
            ? $"No activity: no audit events were recorded for {data.ProjectName} in the period {Period()}. The tables below are empty and the report is complete. {chain}"
            : $"In the period {Period()}, {ReportDataBuilder.N(data.EventCount)} audit events were recorded for {data.ProjectName}. {chain}", body, Ink);
        foreach (var note in data.Notes) Bullet(note);
        y += 6;

        // Headline figures, three per row.
        const int perRow = 3;
        const double gap = 10, boxH = 54;
        var boxW = (ContentW - gap * (perRow - 1)) / perRow;
        for (var i = 0; i < data.Headlines.Count; i++)
        {
            if (i % perRow == 0 && i > 0) y += boxH + gap;
            var x = Left + (i % perRow) * (boxW + gap);
            gfx.DrawRectangle(new XPen(Rule, 0.8), new XSolidBrush(Zebra), x, y, boxW, boxH);
            gfx.DrawString(data.Headlines[i].Value, big, new XSolidBrush(Ink), new XRect(x + 10, y + 8, boxW - 20, 22), XStringFormats.TopLeft);
            gfx.DrawString(data.Headlines[i].Label, small, new XSolidBrush(Muted), new XRect(x + 10, y + 34, boxW - 20, 12), XStringFormats.TopLeft);
        }
        y += boxH + 20;

        DailyChart();
        y += 14;
        ReasonChart();
    }

    private void DailyChart()
    {
        const double h = 170;
        if (!Fits(h + 60)) NewPage();
        SubHeading("Daily activity");
        var plotL = Left + 44; var plotR = Right - 4; var plotT = y + 4; var plotB = y + h;
        var days = data.DailyActivity;
        var max = days.Count == 0 ? 0 : days.Max(d => d.Succeeded + d.Denied);
        var top = NiceCeiling(max);
        var axis = new XPen(Muted, 0.7);
        // Horizontal grid lines with values.
        for (var i = 0; i <= 4; i++)
        {
            var v = top * i / 4;
            var gy = plotB - (plotB - plotT) * i / 4;
            gfx.DrawLine(new XPen(i == 0 ? Muted : Zebra, i == 0 ? 0.7 : 0.6), plotL, gy, plotR, gy);
            gfx.DrawString(ReportDataBuilder.N(v), small, new XSolidBrush(Muted), new XRect(Left, gy - 5, 40, 10), XStringFormats.TopRight);
        }
        gfx.DrawLine(axis, plotL, plotT, plotL, plotB);
        if (days.Count > 0)
        {
            var slot = (plotR - plotL) / days.Count;
            var barW = Math.Max(1.2, slot * 0.72);
            var every = Math.Max(1, (int)Math.Ceiling(days.Count / 10.0));
            for (var i = 0; i < days.Count; i++)
            {
                var d = days[i];
                var x = plotL + i * slot + (slot - barW) / 2;
                var okH = top == 0 ? 0 : (plotB - plotT) * d.Succeeded / top;
                var deniedH = top == 0 ? 0 : (plotB - plotT) * d.Denied / top;
                if (okH > 0) gfx.DrawRectangle(new XPen(Ink, 0.3), new XSolidBrush(OkFill), x, plotB - okH, barW, okH);
                if (deniedH > 0) Hatched(x, plotB - okH - deniedH, barW, deniedH, DeniedFill);
                if (i % every == 0)
                    gfx.DrawString(d.Day.ToString("MM-dd", CultureInfo.InvariantCulture), small, new XSolidBrush(Muted),
                        new XRect(plotL + i * slot - 10, plotB + 3, slot + 20, 10), XStringFormats.TopCenter);
            }
        }
        if (max == 0)
            gfx.DrawString("No activity in the period", body, new XSolidBrush(Muted), new XRect(plotL, plotT, plotR - plotL, plotB - plotT), XStringFormats.Center);
        y = plotB + 18;
        // Legend: the swatches differ by fill and hatching as well as colour.
        gfx.DrawRectangle(new XPen(Ink, 0.3), new XSolidBrush(OkFill), plotL, y, 10, 8);
        gfx.DrawString("Succeeded", small, new XSolidBrush(Ink), plotL + 14, y + 7);
        Hatched(plotL + 80, y, 10, 8, DeniedFill);
        gfx.DrawString("Denied or failed (hatched)", small, new XSolidBrush(Ink), plotL + 94, y + 7);
        gfx.DrawString("events per day (UTC)", small, new XSolidBrush(Muted), new XRect(plotL, y, plotR - plotL, 10), XStringFormats.TopRight);
        y += 16;
    }

    private void ReasonChart()
    {
        var reasons = data.DenialsByReason.Take(8).ToList();
        if (data.DenialsByReason.Count > 8)
            reasons.Add(new ReasonCount("Other reasons", data.DenialsByReason.Skip(8).Sum(r => r.Count)));
        var rowH = 17.0;
        var h = Math.Max(1, reasons.Count) * rowH + 8;
        if (!Fits(h + 40)) NewPage();
        SubHeading("Denials by reason");
        if (reasons.Count == 0)
        {
            Paragraph("No denials or failed actions in the period.", body, Muted);
            return;
        }
        var labelW = 170.0; var barL = Left + labelW + 6; var barMax = Right - barL - 60;
        var max = reasons.Max(r => r.Count);
        foreach (var r in reasons)
        {
            gfx.DrawString(Fit(r.Reason, small, labelW), small, new XSolidBrush(Ink), new XRect(Left, y + 3, labelW, 10), XStringFormats.TopRight);
            var w = Math.Max(1.5, barMax * r.Count / max);
            Hatched(barL, y + 2, w, rowH - 6, DeniedFill);
            gfx.DrawString(ReportDataBuilder.N(r.Count), smallBold, new XSolidBrush(Ink), barL + w + 5, y + 11);
            y += rowH;
        }
        gfx.DrawLine(new XPen(Muted, 0.7), barL, y - rowH * reasons.Count, barL, y);
        y += 8;
    }

    /// <summary>A filled rectangle with white diagonal hatching and an outline, distinguishable without colour.</summary>
    private void Hatched(double x, double top, double w, double h, XColor fill)
    {
        gfx.DrawRectangle(new XSolidBrush(fill), x, top, w, h);
        var state = gfx.Save();
        gfx.IntersectClip(new XRect(x, top, w, h));
        var pen = new XPen(XColors.White, 0.9);
        for (var d = -h; d < w; d += 4) gfx.DrawLine(pen, x + d, top + h, x + d + h, top);
        gfx.Restore(state);
        gfx.DrawRectangle(new XPen(Ink, 0.4), x, top, w, h);
    }

    private void Section(ReportSection s)
    {
        // Each section starts where there is room for its heading, intro and a few rows.
        if (!Fits(110)) NewPage();
        else if (y > Top + 1) y += 16;
        SubHeading(s.Title);
        if (s.Intro is not null) Paragraph(s.Intro, small, Muted);
        if (s.Table is null)
        {
            Paragraph(s.Empty ?? ReportDataBuilder.NoneInPeriod, body, Ink);
            return;
        }
        Table(s.Title, s.Table);
    }

    private void Table(string sectionTitle, ReportTable t)
    {
        var total = t.Columns.Sum(c => c.Weight);
        var widths = t.Columns.Select(c => ContentW * c.Weight / total).ToArray();
        const double pad = 4, lineH = 10.2;
        y += 2;
        TableHeader(t, widths);
        for (var r = 0; r < t.Rows.Count; r++)
        {
            var row = t.Rows[r];
            var cells = row.Select((text, i) => Wrap(text, cell, widths[i] - 2 * pad, maxLines: 4)).ToArray();
            var h = cells.Max(c => c.Count) * lineH + 2 * pad - 1;
            if (!Fits(h))
            {
                NewPage();
                gfx.DrawString($"{sectionTitle} (continued)", smallBold, new XSolidBrush(Muted), Left, y + 8);
                y += 14;
                TableHeader(t, widths);
            }
            if (r % 2 == 1) gfx.DrawRectangle(new XSolidBrush(Zebra), Left, y, ContentW, h);
            var x = Left;
            for (var i = 0; i < cells.Length; i++)
            {
                var ly = y + pad;
                foreach (var line in cells[i])
                {
                    gfx.DrawString(line, cell, new XSolidBrush(Ink), new XRect(x + pad, ly, widths[i] - 2 * pad, lineH),
                        t.Columns[i].Align == ColumnAlign.Right ? XStringFormats.TopRight : XStringFormats.TopLeft);
                    ly += lineH;
                }
                x += widths[i];
            }
            y += h;
            gfx.DrawLine(new XPen(Zebra, 0.5), Left, y, Right, y);
        }
        gfx.DrawLine(new XPen(Rule, 0.8), Left, y, Right, y);
        y += 6;
        if (t.TotalRows > t.Rows.Count)
            Paragraph($"Showing {ReportDataBuilder.N(t.Rows.Count)} of {ReportDataBuilder.N(t.TotalRows)} rows. The CSV download holds every underlying event.", small, Muted);
    }

    private void TableHeader(ReportTable t, double[] widths)
    {
        const double h = 18;
        gfx.DrawRectangle(new XSolidBrush(HeaderFill), Left, y, ContentW, h);
        var x = Left;
        for (var i = 0; i < widths.Length; i++)
        {
            gfx.DrawString(Fit(t.Columns[i].Header, cellBold, widths[i] - 8), cellBold, XBrushes.White, new XRect(x + 4, y + 4.5, widths[i] - 8, 10),
                t.Columns[i].Align == ColumnAlign.Right ? XStringFormats.TopRight : XStringFormats.TopLeft);
            x += widths[i];
        }
        y += h;
    }

    private void Integrity(string? signer)
    {
        NewPage();
        Heading("Integrity and verification");
        var c = data.Chain;
        Paragraph("Data set SHA-256", h2, Ink);
        Paragraph(dataHash, mono, Ink);
        Paragraph("The SHA-256 of the canonical JSON of every figure and row in this report (including the range and last hash of the audit events it covers). " +
            "The portal stores it with the report; Verify on the Reports page recomputes the PDF's hash and checks its signature.", small, Muted);
        y += 8;
        Paragraph("Audit chain verification", h2, Ink);
        Paragraph((c.Ok ? "PASSED. " : "FAILED. ") + c.Message, body, c.Ok ? Ink : DeniedFill);
        Paragraph(c.LastSeq == 0
            ? "No audit event of this project falls in the period."
            : $"Events in the period: seq {c.FirstSeq} to {c.LastSeq} of the project's chain. Hash of the last event in the period:", small, Muted);
        if (c.LastHash is not null) Paragraph(c.LastHash, mono, Ink);
        y += 8;
        Paragraph("Digital signature", h2, Ink);
        Paragraph(signer is null ? "This PDF is not signed." :
            $"Signed with the portal's report-signing certificate {signer}, SHA-256 thumbprint {thumbprint}. A PDF reader shows the signature panel; if the certificate is self-signed, " +
            "trust it by comparing its thumbprint with the one shown on the Reports page. Changing even one byte of this file breaks the signature.", body, Ink);
    }

    // ------------------------------------------------------------------ text

    private void Heading(string text)
    {
        Text(text, h1, Ink);
        gfx.DrawLine(new XPen(Accent, 1.2), Left, y + 2, Left + 60, y + 2);
        y += 12;
    }

    private void SubHeading(string text)
    {
        if (!Fits(40)) NewPage();
        Text(text, h2, Accent);
        y += 3;
    }

    private void Text(string text, XFont font, XColor color)
    {
        var h = font.GetHeight();
        foreach (var line in Wrap(text, font, ContentW))
        {
            if (!Fits(h)) NewPage();
            gfx.DrawString(line, font, new XSolidBrush(color), new XRect(Left, y, ContentW, h), XStringFormats.TopLeft);
            y += h;
        }
    }

    private void Paragraph(string text, XFont font, XColor color)
    {
        Text(text, font, color);
        y += 5;
    }

    private void Bullet(string text)
    {
        var lines = Wrap(text, body, ContentW - 14);
        var h = body.GetHeight();
        if (!Fits(h * lines.Count)) NewPage();
        gfx.DrawString("•", body, new XSolidBrush(Ink), Left + 2, y + h * 0.8);
        foreach (var line in lines)
        {
            gfx.DrawString(line, body, new XSolidBrush(Ink), new XRect(Left + 14, y, ContentW - 14, h), XStringFormats.TopLeft);
            y += h;
        }
        y += 3;
    }

    private string Fit(string text, XFont font, double width)
    {
        if (gfx.MeasureString(text, font).Width <= width) return text;
        var s = text;
        while (s.Length > 1 && gfx.MeasureString(s + "…", font).Width > width) s = s[..^1];
        return s + "…";
    }

    /// <summary>Greedy word wrap; words longer than the width (ids, hashes, JSON) are broken by character.</summary>
    private List<string> Wrap(string text, XFont font, double width, int maxLines = int.MaxValue)
    {
        var lines = new List<string>();
        foreach (var para in (text ?? "").Replace("\r", "").Split('\n'))
        {
            var current = "";
            foreach (var word in para.Split(' '))
            {
                var candidate = current.Length == 0 ? word : current + " " + word;
                if (gfx.MeasureString(candidate, font).Width <= width) { current = candidate; continue; }
                if (current.Length > 0) { lines.Add(current); current = ""; }
                var w = word;
                while (gfx.MeasureString(w, font).Width > width && w.Length > 1)
                {
                    var n = w.Length;
                    while (n > 1 && gfx.MeasureString(w[..n], font).Width > width) n = Math.Max(1, n * 3 / 4 < n - 1 ? Math.Max(n * 3 / 4, 1) : n - 1);
                    while (n + 1 < w.Length && gfx.MeasureString(w[..(n + 1)], font).Width <= width) n++;
                    lines.Add(w[..n]);
                    w = w[n..];
                }
                current = w;
            }
            lines.Add(current);
        }
        if (lines.Count > maxLines)
        {
            lines = lines.Take(maxLines).ToList();
            lines[^1] = Fit(lines[^1] + "…", font, width);
        }
        return lines;
    }

    private string Period() =>
        $"{data.From.UtcDateTime:yyyy-MM-dd HH:mm} – {data.To.UtcDateTime:yyyy-MM-dd HH:mm} UTC";

    private static long NiceCeiling(long max)
    {
        if (max <= 4) return 4;
        var magnitude = (long)Math.Pow(10, Math.Floor(Math.Log10(max)));
        foreach (var m in new[] { 1, 2, 2.5, 5, 10 })
        {
            var candidate = (long)(m * magnitude);
            if (candidate >= max && candidate % 4 == 0) return candidate;
            if (candidate >= max) return (candidate + 3) / 4 * 4;
        }
        return max;
    }
}
