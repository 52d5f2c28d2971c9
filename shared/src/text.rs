//! Text as people type it: the normalisation writers and searchers share, so both sides agree
//! byte for byte, and the checks every name and free-text field passes, kept in one place.

use crate::input::InputError;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

/// Lower-cases, strips accents and keeps letters and digits, single-space separated:
/// `"  José  Núñez-Ortiz "` → `"jose nunez ortiz"`. Reception types names without accents, and the
/// result contains no LIKE wildcards, so it can be used in a pattern as is.
pub fn search_key(input: &str) -> String {
    let folded: String = input
        .nfd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    folded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Keeps the digits of a phone number and a leading `+`; `None` when anything else than
/// digits, spaces, dots, dashes, slashes or parentheses is present.
pub fn phone_digits(input: &str) -> Option<String> {
    let trimmed = input.trim();
    let (plus, rest) = match trimmed.strip_prefix('+') {
        Some(rest) => ("+", rest),
        None => ("", trimmed),
    };
    let mut digits = String::with_capacity(rest.len() + 1);
    digits.push_str(plus);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '/' | '(' | ')' => {}
            _ => return None,
        }
    }
    Some(digits)
}

/// A name as people type it: trimmed, 1 to `max_chars` characters, no control characters and
/// no invisible formatting (invalid, naming `field`, otherwise): a name is shown to others, and
/// a bidi override or a zero-width space would make it read as something it is not.
pub fn single_line(field: &str, raw: &str, max_chars: usize) -> Result<String, InputError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(InputError::invalid(field, "must not be empty"));
    }
    at_most(field, trimmed, max_chars)?;
    if trimmed
        .chars()
        .any(|c| c.is_control() || is_hidden_format(c))
    {
        return Err(InputError::invalid(
            field,
            "must not contain control characters or invisible formatting",
        ));
    }
    Ok(trimmed.to_string())
}

/// Free text as people type it (a visit's reason, clinical notes): line breaks and tabs are
/// kept, other control characters (U+0000 first: PostgreSQL cannot store it) and bidi controls
/// are refused; at most `max_chars` characters (invalid, naming `field`, otherwise). The caller
/// decides whether to trim; the checks every free text gets live here, beside those of a name.
pub fn free_text(field: &str, text: &str, max_chars: usize) -> Result<(), InputError> {
    at_most(field, text, max_chars)?;
    let refused =
        |c: char| (c.is_control() && !matches!(c, '\n' | '\r' | '\t')) || is_bidi_control(c);
    if text.chars().any(refused) {
        return Err(InputError::invalid(
            field,
            "must not contain control characters other than line breaks and tabs, or bidi \
             controls",
        ));
    }
    Ok(())
}

/// An identifier-like text (an email address, a link): no control character, no invisible
/// formatting, no whitespace.
pub fn is_plain_token(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || is_hidden_format(c))
}

/// The explicit bidi controls (embeddings, overrides, isolates): they reorder what is displayed
/// after them, so text can show one thing and say another ("Trojan Source").
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// Unicode format characters (general category Cf) that only hide or reorder: the bidi
/// controls and marks, zero-width spaces and word joiners, invisible operators, byte-order
/// marks, tags, interlinear annotation and shorthand controls, soft hyphens. The zero-width
/// (non-)joiners (U+200C, U+200D) are not refused: Persian, Indic and emoji spellings need them.
fn is_hidden_format(c: char) -> bool {
    is_bidi_control(c)
        || matches!(
            c,
            '\u{AD}'
                | '\u{600}'..='\u{605}'
                | '\u{61C}'
                | '\u{6DD}'
                | '\u{70F}'
                | '\u{890}'..='\u{891}'
                | '\u{8E2}'
                | '\u{180E}'
                | '\u{200B}'
                | '\u{200E}'..='\u{200F}'
                | '\u{2060}'..='\u{2064}'
                | '\u{206A}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

fn at_most(field: &str, text: &str, max_chars: usize) -> Result<(), InputError> {
    if text.chars().count() > max_chars {
        return Err(InputError::invalid(
            field,
            format!("must be at most {max_chars} characters"),
        ));
    }
    Ok(())
}

/// A `#rrggbb` colour, lower-cased.
pub fn hex_color(field: &str, raw: &str) -> Result<String, InputError> {
    let color = raw.trim().to_ascii_lowercase();
    let valid = color.len() == 7
        && color.starts_with('#')
        && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
    if valid {
        Ok(color)
    } else {
        Err(InputError::invalid(field, "must be a colour like #1d4ed8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_are_hex_and_lower_case() {
        assert_eq!(hex_color("c", " #1D4ED8 ").unwrap(), "#1d4ed8");
        for bad in ["1d4ed8", "#1d4ed", "#1d4ed8f", "#ggg000"] {
            assert!(hex_color("c", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn search_key_folds_accents_case_and_punctuation() {
        assert_eq!(search_key("  José  Núñez-Ortiz "), "jose nunez ortiz");
        assert_eq!(search_key("MARÍA Ángeles"), "maria angeles");
        assert_eq!(search_key("100%_o'brien"), "100 o brien");
        assert_eq!(search_key(""), "");
    }

    #[test]
    fn names_and_free_text_name_the_field_they_refuse() {
        assert_eq!(single_line("name", "  Ana  ", 100).as_deref(), Ok("Ana"));
        assert_eq!(
            single_line("name", " \t ", 100),
            Err(InputError::invalid("name", "must not be empty"))
        );
        assert_eq!(
            single_line("name", "Ana\u{7}", 100).map_err(|e| e.field().map(str::to_owned)),
            Err(Some("name".to_owned()))
        );
        assert_eq!(free_text("notes", "línea\nlínea", 11), Ok(()));
        assert_eq!(
            free_text("notes", "línea\nlínea", 10),
            Err(InputError::invalid(
                "notes",
                "must be at most 10 characters"
            ))
        );
    }

    #[test]
    fn names_refuse_what_would_hide_or_reorder_them() {
        let refused = Err(InputError::invalid(
            "name",
            "must not contain control characters or invisible formatting",
        ));
        for name in [
            "Ana\u{0}",
            "Ana\u{202E}zeréP",
            "Ana\u{2066}x\u{2069}",
            "A\u{200B}na",
            "\u{FEFF}Ana",
            "Ana\u{200F}",
            "Ana\u{E0041}",
            "Ana\u{AD}",
        ] {
            assert_eq!(single_line("name", name, 100), refused, "{name:?}");
        }
        // Scripts that need joiners, and accents in both normal forms, are names.
        for name in [
            "می\u{200C}خواهم",
            "José",
            "Jose\u{301}",
            "O'Brien-Núñez",
            "👩\u{200D}⚕️",
        ] {
            assert!(single_line("name", name, 100).is_ok(), "{name:?}");
        }
    }

    #[test]
    fn free_text_keeps_layout_and_refuses_nul_and_bidi_controls() {
        assert_eq!(free_text("notes", "a\n\tb\r\n", 100), Ok(()));
        assert_eq!(free_text("notes", "مرحبا \u{200F}(RLM)", 100), Ok(()));
        for text in [
            "a\u{0}b",
            "a\u{7}",
            "x\u{202E}y",
            "x\u{2067}y",
            "a\u{1B}[2J",
        ] {
            assert_eq!(
                free_text("notes", text, 100).map_err(|e| e.field().map(str::to_owned)),
                Err(Some("notes".to_owned())),
                "{text:?}"
            );
        }
    }

    #[test]
    fn phone_digits_keeps_digits_and_leading_plus() {
        assert_eq!(
            phone_digits("+34 600 12-34.56").as_deref(),
            Some("+34600123456")
        );
        assert_eq!(phone_digits("(91) 555 0101").as_deref(), Some("915550101"));
        assert_eq!(phone_digits("600a"), None);
        assert_eq!(phone_digits("6+00"), None);
    }
}
