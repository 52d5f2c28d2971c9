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

/// A name as people type it: trimmed, 1 to `max_chars` characters, no control characters
/// (invalid, naming `field`, otherwise).
pub fn single_line(field: &str, raw: &str, max_chars: usize) -> Result<String, InputError> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(InputError::invalid(field, "must not be empty"));
    }
    at_most(field, trimmed, max_chars)?;
    if trimmed.chars().any(char::is_control) {
        return Err(InputError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_string())
}

/// Free text as people type it (a visit's reason, clinical notes): line breaks and all, at most
/// `max_chars` characters (invalid, naming `field`, otherwise). The caller decides whether to
/// trim; the checks every free text gets live here, beside those of a name.
pub fn free_text(field: &str, text: &str, max_chars: usize) -> Result<(), InputError> {
    at_most(field, text, max_chars)
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

#[cfg(test)]
mod tests {
    use super::*;

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
