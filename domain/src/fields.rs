//! Field rules for what clients type, applied by both tiers: text is bounded and carries
//! no control characters, instants lie in a sane range, time zones are IANA names. A
//! broken rule is a [`FieldError`] naming the field (422 `validation_failed`).
//!
//! Why each rule exists:
//! - PostgreSQL refuses NUL (0x00) in `text`, so a NUL that reached a query was a 500.
//!   Other control characters mean nothing in a name or a search and only hide text in
//!   logs and pages; a multi-line field (a description) keeps tab and line breaks.
//! - An instant past year 9999 is served as `+10000-…`, which is no RFC 3339 date-time
//!   (the API's documented format); year 0 is a typo. Tessera sells tickets for events
//!   between [`INSTANT_MIN`] and [`INSTANT_MAX`].
//! - A time zone is only useful if clients can resolve it: [`time_zone`] accepts the
//!   names of the IANA database (`chrono-tz`, feature `time-zones`: only the ledger parses
//!   venues, so the wasm edge builds without the tables).

use chrono::{DateTime, Utc};

use crate::problem::FieldError;

/// Earliest instant a client may set: 2000-01-01T00:00:00Z.
pub const INSTANT_MIN: DateTime<Utc> = match DateTime::from_timestamp(946_684_800, 0) {
    Some(at) => at,
    None => panic!("2000-01-01 is representable"),
};
/// Instants must be before this one: 2200-01-01T00:00:00Z.
pub const INSTANT_MAX: DateTime<Utc> = match DateTime::from_timestamp(7_258_118_400, 0) {
    Some(at) => at,
    None => panic!("2200-01-01 is representable"),
};

/// The rules above as OpenAPI `pattern`s (ECMA-262), for the annotations of the fields
/// they apply to (which need literals: the ledger's OpenAPI test compares them to these).
/// Text without control characters.
pub const NO_CONTROLS_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
/// [`single_line`]: no control characters and at least one character that is not blank.
pub const SINGLE_LINE_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$";
/// [`multi_line`]: no control characters but tab, LF and CR.
pub const MULTI_LINE_PATTERN: &str = r"^[^\u0000-\u0008\u000B\u000C\u000E-\u001F\u007F-\u009F]*$";

/// What a multi-line field may contain besides printable text: tab and line breaks
/// (browsers send a textarea's line breaks as CR LF).
const MULTI_LINE_CONTROLS: [char; 3] = ['\t', '\n', '\r'];

/// The first control character (Unicode `Cc`: C0, DEL, C1) in `value` that `allowed`
/// does not admit.
fn forbidden_control(value: &str, allowed: &[char]) -> Option<char> {
    value
        .chars()
        .find(|c| c.is_control() && !allowed.contains(c))
}

fn control_error(field: &str, c: char) -> FieldError {
    FieldError::new(
        field,
        format!(
            "must not contain control characters (found U+{:04X})",
            u32::from(c)
        ),
    )
}

/// Text without control characters, of any length: a query filter or search text.
pub fn no_controls(field: &str, value: &str) -> Result<(), FieldError> {
    match forbidden_control(value, &[]) {
        Some(c) => Err(control_error(field, c)),
        None => Ok(()),
    }
}

/// A one-line text field (a name, a title): not blank, at most `max_chars` characters,
/// no control characters.
pub fn single_line(field: &str, value: &str, max_chars: usize) -> Result<String, FieldError> {
    if value.trim().is_empty() || value.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("must be 1 to {max_chars} characters"),
        ));
    }
    no_controls(field, value)?;
    Ok(value.to_owned())
}

/// A multi-line text field (a description): may be empty, at most `max_chars`
/// characters, no control characters but tab and line breaks.
pub fn multi_line(field: &str, value: &str, max_chars: usize) -> Result<String, FieldError> {
    if value.chars().count() > max_chars {
        return Err(FieldError::new(
            field,
            format!("at most {max_chars} characters"),
        ));
    }
    if let Some(c) = forbidden_control(value, &MULTI_LINE_CONTROLS) {
        return Err(control_error(field, c));
    }
    Ok(value.to_owned())
}

/// An instant in `INSTANT_MIN..INSTANT_MAX`.
pub fn instant(field: &str, at: DateTime<Utc>) -> Result<DateTime<Utc>, FieldError> {
    if at < INSTANT_MIN || at >= INSTANT_MAX {
        return Err(FieldError::new(
            field,
            format!(
                "must be from {} and before {}",
                INSTANT_MIN.to_rfc3339(),
                INSTANT_MAX.to_rfc3339()
            ),
        ));
    }
    Ok(at)
}

/// [`instant`] for an optional one (absent stays absent).
pub fn optional_instant(
    field: &str,
    at: Option<DateTime<Utc>>,
) -> Result<Option<DateTime<Utc>>, FieldError> {
    at.map(|at| instant(field, at)).transpose()
}

/// An IANA time zone name (`Europe/Berlin`), as the database spells it.
#[cfg(feature = "time-zones")]
pub fn time_zone(field: &str, name: &str) -> Result<String, FieldError> {
    match name.parse::<chrono_tz::Tz>() {
        Ok(tz) => Ok(tz.name().to_owned()),
        Err(_) => Err(FieldError::new(
            field,
            "must be an IANA time zone, e.g. Europe/Berlin",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .map(|d| d.with_timezone(&Utc))
            .expect("valid RFC 3339")
    }

    #[test]
    fn the_bounds_are_the_named_dates() {
        assert_eq!(INSTANT_MIN, at("2000-01-01T00:00:00Z"));
        assert_eq!(INSTANT_MAX, at("2200-01-01T00:00:00Z"));
    }

    #[test]
    fn single_line_text_refuses_every_control_character() {
        assert_eq!(
            single_line("name", "Main Hall", 20),
            Ok("Main Hall".to_owned())
        );
        assert!(single_line("name", "Zürich – Große Halle", 20).is_ok());
        for bad in [
            "a\0b",
            "\0",
            "tab\there",
            "line\nbreak",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            let error = single_line("venue.name", bad, 20).expect_err(bad);
            assert_eq!(error.field, "venue.name", "{bad:?}");
        }
        assert!(single_line("name", "   ", 20).is_err());
        assert!(single_line("name", &"x".repeat(21), 20).is_err());
        assert!(no_controls("q", "jazz\0").is_err());
        assert!(no_controls("q", "").is_ok());
    }

    #[test]
    fn multi_line_text_keeps_tabs_and_line_breaks_only() {
        let text = "Line one\r\nLine two\n\tindented";
        assert_eq!(multi_line("description", text, 100), Ok(text.to_owned()));
        assert_eq!(multi_line("description", "", 100), Ok(String::new()));
        for bad in ["nul\0", "esc\u{1b}[31m", "vt\u{b}"] {
            assert!(multi_line("description", bad, 100).is_err(), "{bad:?}");
        }
        assert!(multi_line("description", &"x".repeat(101), 100).is_err());
    }

    #[test]
    fn instants_lie_between_the_bounds() {
        assert!(instant("starts_at", at("2030-06-01T19:00:00Z")).is_ok());
        assert!(instant("starts_at", INSTANT_MIN).is_ok());
        assert!(instant("starts_at", INSTANT_MAX).is_err());
        assert!(instant("starts_at", at("1999-12-31T23:59:59Z")).is_err());
        let year_10000 = at("9999-12-31T23:59:59Z") + chrono::Duration::days(2);
        assert!(instant("starts_at", year_10000).is_err());
        // The JSON bodies' parser reads both, so only this rule stops them.
        for text in ["\"+10000-01-01T00:00:00Z\"", "\"0000-01-01T00:00:00Z\""] {
            let parsed: DateTime<Utc> = serde_json::from_str(text).expect(text);
            assert!(instant("starts_at", parsed).is_err(), "{text}");
        }
        assert_eq!(optional_instant("sale_ends_at", None), Ok(None));
        let error = optional_instant("sale_ends_at", Some(at("0000-01-01T00:00:00Z")));
        assert_eq!(error.map_err(|e| e.field), Err("sale_ends_at".to_owned()));
    }

    #[cfg(feature = "time-zones")]
    #[test]
    fn time_zones_are_iana_names() {
        assert_eq!(
            time_zone("venue.timezone", "Europe/Berlin"),
            Ok("Europe/Berlin".to_owned())
        );
        assert!(time_zone("venue.timezone", "UTC").is_ok());
        for bad in [
            "Not/AZone",
            "",
            "europe/berlin",
            "Europe/Berlin\0",
            "+01:00",
        ] {
            assert!(time_zone("venue.timezone", bad).is_err(), "{bad:?}");
        }
    }
}
