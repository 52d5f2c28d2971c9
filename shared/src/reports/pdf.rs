//! The insurance report as a PDF: A4 portrait in the standard Helvetica (every reader has it, so
//! nothing is embedded or shipped), the clinic and patient block, a table of completed
//! procedures spread over as many pages as it needs, the totals on the last page and
//! "Página k de n" at the foot of every page.
//!
//! Text is written in WinAnsiEncoding, which covers Spanish (á, é, ñ, ü, ¿, ¡) and the euro sign.
//! A character it lacks is written as its base letter when it has one (ő → o) and as `?`
//! otherwise. Content streams are left uncompressed: a report is tens of kilobytes, and
//! compressing it would need a deflate dependency for little gain.

mod helvetica;
mod text;

use super::types::{InsuranceReport, ReportLine, Totals};
use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use pdf_writer::{Date, Finish, Name, Pdf, Rect, Ref, TextStr};
use text::{Canvas, Font, fit};

const PAGE_WIDTH: f32 = 595.28;
const PAGE_HEIGHT: f32 = 841.89;
const MARGIN: f32 = 50.0;
const RIGHT: f32 = PAGE_WIDTH - MARGIN;
const TOP: f32 = PAGE_HEIGHT - MARGIN;
const ROW_HEIGHT: f32 = 16.0;
const NOTE_HEIGHT: f32 = 12.0;
/// The lowest baseline of the body; the footer sits below it.
const BODY_BOTTOM: f32 = 80.0;
const FOOTER_Y: f32 = 40.0;

const TABLE_SIZE: f32 = 9.5;
const DATE_X: f32 = MARGIN;
const CODE_X: f32 = MARGIN + 70.0;
const NAME_X: f32 = MARGIN + 150.0;
/// The procedure name ends here; the amount is right-aligned at `RIGHT`.
const NAME_END: f32 = RIGHT - 85.0;

/// Where the table header sits on the first page and on the pages after it.
const FIRST_TABLE_Y: f32 = 650.0;
const NEXT_TABLE_Y: f32 = 752.0;
/// The header line, the rule under it and the gap before the first row.
const TABLE_HEADER_HEIGHT: f32 = 22.0;

/// A rendered report.
#[derive(Debug)]
pub struct RenderedPdf {
    pub bytes: Vec<u8>,
    pub pages: usize,
}

pub fn render(report: &InsuranceReport) -> RenderedPdf {
    let totals = report.totals();
    let plans = paginate(report.lines.len(), totals_height(&totals));
    let pages = plans.len();

    let mut refs = RefAllocator::default();
    let catalog_id = refs.next();
    let page_tree_id = refs.next();
    let regular_id = refs.next();
    let bold_id = refs.next();
    let info_id = refs.next();
    let page_ids: Vec<(Ref, Ref)> = plans.iter().map(|_| (refs.next(), refs.next())).collect();

    let mut pdf = Pdf::new();
    pdf.catalog(catalog_id)
        .pages(page_tree_id)
        .lang(TextStr("es-ES"));
    pdf.pages(page_tree_id)
        .kids(page_ids.iter().map(|(page, _)| *page))
        .count(i32::try_from(pages).unwrap_or(i32::MAX));
    for (id, font) in [(regular_id, Font::Regular), (bold_id, Font::Bold)] {
        pdf.type1_font(id)
            .base_font(font.base_name())
            .encoding_predefined(Name(b"WinAnsiEncoding"));
    }
    pdf.document_info(info_id)
        .title(TextStr("Informe de procedimientos para aseguradora"))
        .creator(TextStr("Pulso"))
        .producer(TextStr("Pulso"))
        .creation_date(pdf_date(report.generated_at, report.utc_offset_minutes));

    for (index, (plan, (page_id, content_id))) in plans.iter().zip(&page_ids).enumerate() {
        let mut page = pdf.page(*page_id);
        page.media_box(Rect::new(0.0, 0.0, PAGE_WIDTH, PAGE_HEIGHT))
            .parent(page_tree_id)
            .contents(*content_id);
        page.resources()
            .fonts()
            .pair(Font::Regular.resource(), regular_id)
            .pair(Font::Bold.resource(), bold_id);
        page.finish();

        let mut canvas = Canvas::new();
        draw_page(&mut canvas, report, &totals, plan, index + 1, pages);
        pdf.stream(*content_id, &canvas.content.finish());
    }
    RenderedPdf {
        bytes: pdf.finish(),
        pages,
    }
}

/// What one page holds: a run of table rows and, on the last page, the totals.
#[derive(Clone, Debug, PartialEq, Eq)]
struct PagePlan {
    first: bool,
    rows: std::ops::Range<usize>,
    totals: bool,
}

/// Splits `rows` table rows over pages and puts the totals (`totals_height` from the cursor to
/// their last baseline) after the last row, on a page of their own if they do not fit under it.
fn paginate(rows: usize, totals_height: f32) -> Vec<PagePlan> {
    let mut plans = Vec::new();
    let mut start = 0;
    loop {
        let first = plans.is_empty();
        let top = first_row_y(first);
        let end = (start + rows_fitting(top)).min(rows);
        let cursor = top - (end - start) as f32 * ROW_HEIGHT;
        // An empty report says so in one line (two rows of space) before its totals.
        let needed = if rows == 0 {
            totals_height + 2.0 * ROW_HEIGHT
        } else {
            totals_height
        };
        if end == rows {
            let fits = cursor - needed >= BODY_BOTTOM;
            plans.push(PagePlan {
                first,
                rows: start..end,
                totals: fits,
            });
            if !fits {
                plans.push(PagePlan {
                    first: false,
                    rows: end..end,
                    totals: true,
                });
            }
            return plans;
        }
        plans.push(PagePlan {
            first,
            rows: start..end,
            totals: false,
        });
        start = end;
    }
}

/// The baseline of the first table row.
fn first_row_y(first_page: bool) -> f32 {
    let table = if first_page {
        FIRST_TABLE_Y
    } else {
        NEXT_TABLE_Y
    };
    table - TABLE_HEADER_HEIGHT
}

fn rows_fitting(top: f32) -> usize {
    ((top - BODY_BOTTOM) / ROW_HEIGHT).floor() as usize + 1
}

/// From the cursor (the baseline the next row would take) to the totals' last baseline.
fn totals_height(totals: &Totals) -> f32 {
    let total_lines = totals.by_currency.len().max(1) as f32;
    let notes = if totals.unpriced > 0 { 2.0 } else { 1.0 };
    6.0 + total_lines * ROW_HEIGHT + notes * NOTE_HEIGHT + 4.0
}

fn draw_page(
    canvas: &mut Canvas,
    report: &InsuranceReport,
    totals: &Totals,
    plan: &PagePlan,
    number: usize,
    pages: usize,
) {
    if plan.first {
        draw_first_header(canvas, report);
    } else {
        draw_continuation_header(canvas, report);
    }
    let table_y = if plan.first {
        FIRST_TABLE_Y
    } else {
        NEXT_TABLE_Y
    };
    let mut cursor = table_y;
    if report.lines.is_empty() {
        canvas.text(
            Font::Regular,
            10.0,
            MARGIN,
            cursor,
            "No constan procedimientos completados de este paciente en el periodo.",
        );
        cursor -= 2.0 * ROW_HEIGHT;
    } else if !plan.rows.is_empty() {
        draw_table_header(canvas, table_y);
        cursor = first_row_y(plan.first);
        for line in &report.lines[plan.rows.clone()] {
            draw_row(canvas, line, cursor);
            cursor -= ROW_HEIGHT;
        }
    }
    if plan.totals {
        draw_totals(canvas, report, totals, cursor);
    }
    draw_footer(canvas, report, number, pages);
}

fn draw_first_header(canvas: &mut Canvas, report: &InsuranceReport) {
    let clinic = fit(&report.clinic_name, Font::Bold, 16.0, RIGHT - MARGIN);
    canvas.text(Font::Bold, 16.0, MARGIN, TOP, &clinic);
    canvas.text(
        Font::Bold,
        12.0,
        MARGIN,
        TOP - 22.0,
        "Informe de procedimientos para aseguradora",
    );
    canvas.rule(MARGIN, RIGHT, TOP - 32.0, 0.8);

    let national_id = report.national_id.as_deref().unwrap_or("No consta");
    let insurer = format!("{} ({})", report.insurer_name, report.insurer_code);
    let period = period_text(report);
    let issued = format!(
        "{} ({})",
        report.generated_at.format("%d/%m/%Y %H:%M"),
        report.timezone
    );
    let rows = [
        ("Paciente:", report.patient_name.as_str()),
        ("DNI/NIE:", national_id),
        ("Aseguradora:", insurer.as_str()),
        ("Periodo:", period.as_str()),
        ("Emitido:", issued.as_str()),
    ];
    let value_x = MARGIN + 85.0;
    for (index, (label, value)) in rows.into_iter().enumerate() {
        let y = TOP - 52.0 - index as f32 * 15.0;
        canvas.text(Font::Bold, 10.0, MARGIN, y, label);
        let value = fit(value, Font::Regular, 10.0, RIGHT - value_x);
        canvas.text(Font::Regular, 10.0, value_x, y, &value);
    }
}

fn draw_continuation_header(canvas: &mut Canvas, report: &InsuranceReport) {
    let clinic = fit(&report.clinic_name, Font::Bold, 11.0, RIGHT - MARGIN);
    canvas.text(Font::Bold, 11.0, MARGIN, TOP, &clinic);
    let subtitle = format!(
        "Informe para aseguradora (continuación) · {} · {}",
        report.patient_name,
        period_text(report)
    );
    let subtitle = fit(&subtitle, Font::Regular, 9.0, RIGHT - MARGIN);
    canvas.text(Font::Regular, 9.0, MARGIN, TOP - 14.0, &subtitle);
    canvas.rule(MARGIN, RIGHT, TOP - 22.0, 0.8);
}

fn draw_table_header(canvas: &mut Canvas, y: f32) {
    canvas.text(Font::Bold, TABLE_SIZE, DATE_X, y, "Fecha");
    canvas.text(Font::Bold, TABLE_SIZE, CODE_X, y, "Código");
    canvas.text(Font::Bold, TABLE_SIZE, NAME_X, y, "Procedimiento");
    canvas.text_right(Font::Bold, TABLE_SIZE, RIGHT, y, "Importe");
    canvas.rule(MARGIN, RIGHT, y - 6.0, 0.5);
}

fn draw_row(canvas: &mut Canvas, line: &ReportLine, y: f32) {
    canvas.text(
        Font::Regular,
        TABLE_SIZE,
        DATE_X,
        y,
        &line.date.format("%d/%m/%Y").to_string(),
    );
    let code = line.code.as_deref().unwrap_or("—");
    let code = fit(code, Font::Regular, TABLE_SIZE, NAME_X - CODE_X - 6.0);
    canvas.text(Font::Regular, TABLE_SIZE, CODE_X, y, &code);
    let name = fit(&line.name, Font::Regular, TABLE_SIZE, NAME_END - NAME_X);
    canvas.text(Font::Regular, TABLE_SIZE, NAME_X, y, &name);
    let amount = match &line.price {
        Some(price) => money(price.cents, &price.currency),
        None => "sin precio".into(),
    };
    canvas.text_right(Font::Regular, TABLE_SIZE, RIGHT, y, &amount);
}

fn draw_totals(canvas: &mut Canvas, report: &InsuranceReport, totals: &Totals, cursor: f32) {
    canvas.rule(MARGIN, RIGHT, cursor + ROW_HEIGHT - 6.0, 0.8);
    let mut y = cursor - 6.0;
    let count = report.lines.len();
    let label = format!(
        "Total · {count} {}",
        if count == 1 {
            "procedimiento"
        } else {
            "procedimientos"
        }
    );
    if totals.by_currency.is_empty() {
        canvas.text(Font::Bold, 10.0, MARGIN, y, &label);
        canvas.text_right(Font::Bold, 10.0, RIGHT, y, &money(0, "EUR"));
        y -= ROW_HEIGHT;
    }
    let several = totals.by_currency.len() > 1;
    for (currency, cents) in &totals.by_currency {
        let label = if several {
            format!("{label} · en {currency}")
        } else {
            label.clone()
        };
        canvas.text(Font::Bold, 10.0, MARGIN, y, &label);
        canvas.text_right(Font::Bold, 10.0, RIGHT, y, &money(*cents, currency));
        y -= ROW_HEIGHT;
    }
    y += ROW_HEIGHT - NOTE_HEIGHT - 4.0;
    if totals.unpriced > 0 {
        let note = if totals.unpriced == 1 {
            "1 procedimiento no tiene precio en el catálogo de la clínica y no se suma al total."
                .to_string()
        } else {
            format!(
                "{} procedimientos no tienen precio en el catálogo de la clínica y no se suman al \
                 total.",
                totals.unpriced
            )
        };
        canvas.text(Font::Regular, 8.0, MARGIN, y, &note);
        y -= NOTE_HEIGHT;
    }
    canvas.text(
        Font::Regular,
        8.0,
        MARGIN,
        y,
        "Importes según el catálogo de precios vigente de la clínica en la fecha de emisión.",
    );
}

fn draw_footer(canvas: &mut Canvas, report: &InsuranceReport, number: usize, pages: usize) {
    canvas.rule(MARGIN, RIGHT, FOOTER_Y + 12.0, 0.3);
    let generated = format!(
        "Generado el {} a las {} ({})",
        report.generated_at.format("%d/%m/%Y"),
        report.generated_at.format("%H:%M"),
        report.timezone
    );
    let generated = fit(&generated, Font::Regular, 8.0, RIGHT - MARGIN - 100.0);
    canvas.text(Font::Regular, 8.0, MARGIN, FOOTER_Y, &generated);
    canvas.text_right(
        Font::Regular,
        8.0,
        RIGHT,
        FOOTER_Y,
        &format!("Página {number} de {pages}"),
    );
}

fn period_text(report: &InsuranceReport) -> String {
    format!(
        "{} – {}",
        day(report.period.from()),
        day(report.period.to())
    )
}

fn day(date: NaiveDate) -> String {
    date.format("%d/%m/%Y").to_string()
}

/// An amount as Spanish invoices write it: `1.234,56 €` (other currencies by their code).
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    let units = (cents / 100).to_string();
    let mut grouped = String::with_capacity(units.len() + units.len() / 3);
    for (index, digit) in units.chars().enumerate() {
        if index > 0 && (units.len() - index).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(digit);
    }
    let symbol = if currency == "EUR" { "€" } else { currency };
    format!("{sign}{grouped},{:02} {symbol}", cents % 100)
}

/// The PDF's creation date, with the clinic's offset from UTC.
fn pdf_date(local: NaiveDateTime, utc_offset_minutes: i32) -> Date {
    let clamp = |value: u32| u8::try_from(value).unwrap_or(u8::MAX);
    let offset_hours = i8::try_from(utc_offset_minutes / 60).unwrap_or(0);
    let offset_minutes = u8::try_from((utc_offset_minutes % 60).unsigned_abs()).unwrap_or(0);
    Date::new(u16::try_from(local.year()).unwrap_or(0))
        .month(clamp(local.month()))
        .day(clamp(local.day()))
        .hour(clamp(local.hour()))
        .minute(clamp(local.minute()))
        .second(clamp(local.second()))
        .utc_offset_hour(offset_hours)
        .utc_offset_minute(offset_minutes)
}

/// Hands out object ids in order, so none is used twice (pdf-writer panics on a reused id).
#[derive(Default)]
struct RefAllocator(i32);

impl RefAllocator {
    fn next(&mut self) -> Ref {
        self.0 += 1;
        Ref::new(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reports::types::{Money, ReportPeriod};

    fn date(raw: &str) -> NaiveDate {
        NaiveDate::parse_from_str(raw, "%Y-%m-%d").unwrap()
    }

    fn report(lines: usize) -> InsuranceReport {
        InsuranceReport {
            clinic_name: "Clínica Dental Sonrisa".into(),
            timezone: "Europe/Madrid".into(),
            generated_at: date("2026-06-01").and_hms_opt(9, 30, 0).unwrap(),
            utc_offset_minutes: 120,
            patient_name: "María José Núñez Peña".into(),
            national_id: Some("12345678Z".into()),
            insurer_code: "SANITAS".into(),
            insurer_name: "Sanitas".into(),
            period: ReportPeriod::new(date("2026-01-01"), date("2026-05-31")).unwrap(),
            lines: (0..lines)
                .map(|index| ReportLine {
                    date: date("2026-01-01") + chrono::TimeDelta::days(index as i64 % 150),
                    code: Some("LIMP".into()),
                    name: "Limpieza dental (profilaxis)".into(),
                    price: Some(Money {
                        cents: 5500,
                        currency: "EUR".into(),
                    }),
                })
                .collect(),
        }
    }

    #[test]
    fn money_is_written_the_spanish_way() {
        assert_eq!(money(0, "EUR"), "0,00 €");
        assert_eq!(money(5, "EUR"), "0,05 €");
        assert_eq!(money(3500, "EUR"), "35,00 €");
        assert_eq!(money(123_456, "EUR"), "1.234,56 €");
        assert_eq!(money(100_000_000, "EUR"), "1.000.000,00 €");
        assert_eq!(money(-1050, "USD"), "-10,50 USD");
    }

    #[test]
    fn pages_fill_up_and_the_totals_never_split_off_a_row() {
        let height = totals_height(&report(1).totals());
        let first = rows_fitting(first_row_y(true));
        let next = rows_fitting(first_row_y(false));
        assert!(first > 20 && next > first);

        // No rows: one page with the message and the totals.
        assert_eq!(
            paginate(0, height),
            vec![PagePlan {
                first: true,
                rows: 0..0,
                totals: true
            }]
        );
        // A short table: one page.
        assert_eq!(paginate(3, height).len(), 1);
        // A full first page pushes the totals onto a page of their own.
        let plans = paginate(first, height);
        assert_eq!(plans.len(), 2);
        assert_eq!(plans[0].rows, 0..first);
        assert!(!plans[0].totals);
        assert_eq!(plans[1].rows, first..first);
        assert!(plans[1].totals);
        // Many rows: every row exactly once, in order, totals only at the end.
        let rows = first + 2 * next + 5;
        let plans = paginate(rows, height);
        assert_eq!(plans.len(), 4);
        let mut expected = 0;
        for (index, plan) in plans.iter().enumerate() {
            assert_eq!(plan.first, index == 0);
            assert_eq!(plan.rows.start, expected);
            expected = plan.rows.end;
            assert_eq!(plan.totals, index == plans.len() - 1);
        }
        assert_eq!(expected, rows);
    }

    #[test]
    fn the_document_is_a_complete_pdf_with_one_page_object_per_page() {
        for (lines, pages) in [(0, 1), (5, 1), (60, 2), (100, 3)] {
            let rendered = render(&report(lines));
            assert_eq!(rendered.pages, pages, "{lines} lines");
            let bytes = &rendered.bytes;
            assert!(bytes.starts_with(b"%PDF-1.7"));
            assert!(bytes.trim_ascii_end().ends_with(b"%%EOF"));
            let text = String::from_utf8_lossy(bytes);
            assert_eq!(
                text.matches("/Type /Page\n").count(),
                pages,
                "{lines} lines"
            );
            assert!(text.contains(&format!("/Count {pages}")));
            assert!(text.contains("/BaseFont /Helvetica-Bold"));
            assert!(text.contains("/Encoding /WinAnsiEncoding"));
        }
    }
}
