//! Text on a page: the two Helvetica faces and their widths, WinAnsiEncoding, fitting text to
//! a width, and the canvas a page is drawn on.

use super::helvetica;
use pdf_writer::{Content, Name, Str};
use unicode_normalization::UnicodeNormalization;

#[derive(Clone, Copy, Debug)]
pub(super) enum Font {
    Regular,
    Bold,
}

impl Font {
    pub(super) fn resource(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"F1"),
            Font::Bold => Name(b"F2"),
        }
    }

    pub(super) fn base_name(self) -> Name<'static> {
        match self {
            Font::Regular => Name(b"Helvetica"),
            Font::Bold => Name(b"Helvetica-Bold"),
        }
    }

    fn widths(self) -> &'static [u16; 224] {
        match self {
            Font::Regular => &helvetica::REGULAR,
            Font::Bold => &helvetica::BOLD,
        }
    }

    /// Width of WinAnsi bytes at `size` points.
    pub(super) fn width(self, encoded: &[u8], size: f32) -> f32 {
        let widths = self.widths();
        let units: u32 = encoded
            .iter()
            .map(|byte| {
                usize::from(*byte)
                    .checked_sub(32)
                    .and_then(|index| widths.get(index))
                    .map_or(0, |width| u32::from(*width))
            })
            .sum();
        units as f32 * size / 1000.0
    }
}

/// `text` in WinAnsiEncoding, one byte per character.
fn winansi(text: &str) -> Vec<u8> {
    text.chars().map(winansi_byte).collect()
}

fn winansi_byte(c: char) -> u8 {
    if let Some(byte) = winansi_exact(c) {
        return byte;
    }
    if c.is_whitespace() {
        return b' ';
    }
    // A letter WinAnsi lacks may still have a base letter it has (ő → o, ł stays `?`).
    c.nfd()
        .next()
        .filter(|base| *base != c)
        .and_then(winansi_exact)
        .unwrap_or(b'?')
}

fn winansi_exact(c: char) -> Option<u8> {
    let byte = match c {
        // Printable ASCII and Latin-1 are WinAnsi as they are.
        ' '..='~' | '\u{a0}'..='\u{ff}' => u8::try_from(u32::from(c)).ok()?,
        '€' => 0x80,
        '‚' => 0x82,
        'ƒ' => 0x83,
        '„' => 0x84,
        '…' => 0x85,
        '†' => 0x86,
        '‡' => 0x87,
        'ˆ' => 0x88,
        '‰' => 0x89,
        'Š' => 0x8a,
        '‹' => 0x8b,
        'Œ' => 0x8c,
        'Ž' => 0x8e,
        '‘' => 0x91,
        '’' => 0x92,
        '“' => 0x93,
        '”' => 0x94,
        '•' => 0x95,
        '–' => 0x96,
        '—' => 0x97,
        '˜' => 0x98,
        '™' => 0x99,
        'š' => 0x9a,
        '›' => 0x9b,
        'œ' => 0x9c,
        'ž' => 0x9e,
        'Ÿ' => 0x9f,
        _ => return None,
    };
    Some(byte)
}

/// `text` cut with an ellipsis so that it is at most `max_width` points wide.
pub(super) fn fit(text: &str, font: Font, size: f32, max_width: f32) -> String {
    if font.width(&winansi(text), size) <= max_width {
        return text.to_string();
    }
    let budget = max_width - font.width(&winansi("…"), size);
    let mut fitted = String::new();
    let mut width = 0.0;
    for c in text.chars() {
        let advance = font.width(&[winansi_byte(c)], size);
        if width + advance > budget {
            break;
        }
        width += advance;
        fitted.push(c);
    }
    format!("{}…", fitted.trim_end())
}

/// A page's content stream with the few drawing operations a report needs.
pub(super) struct Canvas {
    pub(super) content: Content,
}

impl Canvas {
    pub(super) fn new() -> Self {
        Canvas {
            content: Content::new(),
        }
    }

    pub(super) fn text(&mut self, font: Font, size: f32, x: f32, y: f32, text: &str) {
        self.content
            .begin_text()
            .set_font(font.resource(), size)
            .next_line(x, y)
            .show(Str(&winansi(text)))
            .end_text();
    }

    pub(super) fn text_right(&mut self, font: Font, size: f32, right: f32, y: f32, text: &str) {
        let width = font.width(&winansi(text), size);
        self.text(font, size, right - width, y, text);
    }

    pub(super) fn rule(&mut self, from_x: f32, to_x: f32, y: f32, width: f32) {
        self.content
            .set_line_width(width)
            .move_to(from_x, y)
            .line_to(to_x, y)
            .stroke();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spanish_text_and_the_euro_are_winansi() {
        assert_eq!(winansi("Peña €"), vec![b'P', b'e', 0xf1, b'a', b' ', 0x80]);
        assert_eq!(winansi("Ángel ¿Sí?"), b"\xc1ngel \xbfS\xed?".to_vec());
        assert_eq!(
            winansi("Página – “x”"),
            b"P\xe1gina \x96 \x93x\x94".to_vec()
        );
        // Outside WinAnsi: the base letter when there is one, else `?`.
        assert_eq!(winansi("Erdős Łukasz 李"), b"Erdos ?ukasz ?".to_vec());
        assert_eq!(winansi("a\tb\u{2003}c"), b"a b c".to_vec());
    }

    #[test]
    fn widths_follow_the_afm_metrics() {
        // Helvetica: "Hola" = H 722 + o 556 + l 222 + a 556 = 2056 thousandths.
        assert!((Font::Regular.width(&winansi("Hola"), 10.0) - 20.56).abs() < 1e-4);
        assert!((Font::Bold.width(&winansi("€"), 1000.0) - 556.0).abs() < 1e-3);
        assert_eq!(Font::Regular.width(&winansi("ñ"), 1000.0), 556.0);
    }

    #[test]
    fn long_text_is_cut_with_an_ellipsis_to_fit() {
        assert_eq!(fit("Revisión", Font::Regular, 10.0, 200.0), "Revisión");
        let long = "Ortopantomografía (radiografía panorámica) de control tras tratamiento";
        let cut = fit(long, Font::Regular, 9.5, 150.0);
        assert!(cut.ends_with('…'), "{cut}");
        assert!(Font::Regular.width(&winansi(&cut), 9.5) <= 150.0);
        assert!(long.starts_with(cut.trim_end_matches('…')));
    }
}
