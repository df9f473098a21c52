//! Who bought: the name and e-mail a storefront's checkout asks for and sends with the
//! confirm (`POST /v1/holds/{hold_id}/confirm`, the optional `buyer` object). Parsed once,
//! at either tier, into a [`Buyer`]; the rules are also the document's (`maxLength`,
//! `pattern`), so a body the OpenAPI document accepts is one the ledger accepts.
//!
//! - name: a one-line text field ([`fields::single_line`]: not blank, no control
//!   characters) of at most [`BUYER_NAME_CHARS_MAX`] characters, kept trimmed.
//! - e-mail: at most [`EMAIL_CHARS_MAX`] characters, exactly one `@`, a local part of 1 to
//!   [`EMAIL_LOCAL_CHARS_MAX`] characters, a domain of non-empty dot-separated labels with
//!   at least one dot, and no white space or control character anywhere. Not RFC 5322's
//!   whole grammar (quoted local parts, comments): those are vanishingly rare at a
//!   checkout, and the rule must be one `pattern` every validator reads alike. Kept as
//!   given; two spellings are one address when they differ only in the domain's case
//!   (domains are case-insensitive, local parts may not be: RFC 5321 §2.4).
//!
//! Both are personal data: they are stored on the order and shown to whoever holds its
//! reference, and never logged, never in an outbox message or a webhook payload. No error
//! message here repeats the value it refuses.

use serde::{Deserialize, Serialize};

use crate::fields;
use crate::problem::FieldError;

/// Longest buyer name, in characters (after trimming, as the column's check counts).
pub const BUYER_NAME_CHARS_MAX: usize = 100;
/// Longest e-mail address: RFC 5321's 256-octet path less its angle brackets (RFC 3696
/// errata 1690), counted in characters as JSON Schema's `maxLength` and the column do.
pub const EMAIL_CHARS_MAX: usize = 254;
/// Longest local part (before the `@`): RFC 5321 §4.5.3.1.1.
pub const EMAIL_LOCAL_CHARS_MAX: usize = 64;

/// The field a broken name is reported on (the body's path to it).
pub const NAME_FIELD: &str = "buyer.name";
/// The field a broken e-mail is reported on.
pub const EMAIL_FIELD: &str = "buyer.email";

/// [`Email::parse`] as an OpenAPI `pattern` (ECMA-262), for the annotation below (which
/// needs a literal; the tests compare them). White space is spelled out rather than `\s`
/// because ECMA-262, Python (schemathesis) and Rust each read `\s` differently: the class
/// is Unicode's `White_Space` plus the control characters (`Cc`), exactly
/// [`forbidden_in_email`].
pub const EMAIL_PATTERN: &str = r"^[^@\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]{1,64}@[^@.\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+(\.[^@.\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+)+$";

/// The `buyer` object of a confirm body exactly as sent. Unknown fields are refused, as
/// everywhere else: a typo (`emial`) must not drop the address silently.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct BuyerRequest {
    /// The buyer's name: not blank, no control characters, at most 100 characters; stored
    /// trimmed.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 100,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*[^\s\u0000-\u001F\u007F-\u009F][^\u0000-\u001F\u007F-\u009F]*$",
            example = "Ada Lovelace"
        )
    )]
    pub name: String,
    /// The buyer's e-mail: one `@`, a local part of at most 64 characters, a domain with a
    /// dot, no white space or control characters, at most 254 characters; stored as given.
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 254,
            pattern = r"^[^@\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]{1,64}@[^@.\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+(\.[^@.\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+)+$",
            example = "ada@example.com"
        )
    )]
    pub email: String,
}

impl BuyerRequest {
    /// Parse both fields, reporting each broken one (`buyer.name`, `buyer.email`).
    pub fn parse(&self) -> Result<Buyer, Vec<FieldError>> {
        let mut errors = Vec::new();
        let name = BuyerName::parse(&self.name)
            .map_err(|e| errors.push(e))
            .ok();
        let email = Email::parse(&self.email)
            .map_err(|e| errors.push(FieldError::new(EMAIL_FIELD, e)))
            .ok();
        match (name, email) {
            (Some(name), Some(email)) => Ok(Buyer { name, email }),
            _ => Err(errors),
        }
    }
}

/// A buyer's name: trimmed, 1 to [`BUYER_NAME_CHARS_MAX`] characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuyerName(String);

impl BuyerName {
    pub fn parse(value: &str) -> Result<Self, FieldError> {
        // Bounded before trimming too, so the document's `maxLength` on the sent value and
        // this rule agree; the trimmed value is then 1 to the bound as well.
        let checked = fields::single_line(NAME_FIELD, value, BUYER_NAME_CHARS_MAX)?;
        Ok(Self(checked.trim().to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Why a text is not an e-mail address, for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("at most {EMAIL_CHARS_MAX} characters")]
    TooLong,
    #[error("must not contain spaces or control characters (found U+{0:04X})")]
    Forbidden(u32),
    #[error("must contain exactly one @")]
    NotOneAt,
    #[error("the part before @ must be 1 to {EMAIL_LOCAL_CHARS_MAX} characters")]
    LocalPart,
    #[error("the domain must be names separated by dots, e.g. example.com")]
    Domain,
}

/// An e-mail address as [`Email::parse`] accepts it, kept as given. Equal to another when
/// both differ at most in the domain's case.
#[derive(Debug, Clone)]
pub struct Email(String);

/// Unicode `White_Space` or a control character (`Cc`): never in an address.
pub fn forbidden_in_email(c: char) -> bool {
    c.is_whitespace() || c.is_control()
}

impl Email {
    pub fn parse(value: &str) -> Result<Self, EmailError> {
        if value.chars().count() > EMAIL_CHARS_MAX {
            return Err(EmailError::TooLong);
        }
        if let Some(c) = value.chars().find(|&c| forbidden_in_email(c)) {
            return Err(EmailError::Forbidden(u32::from(c)));
        }
        let Some((local, domain)) = value.split_once('@').filter(|(_, d)| !d.contains('@')) else {
            return Err(EmailError::NotOneAt);
        };
        if local.is_empty() || local.chars().count() > EMAIL_LOCAL_CHARS_MAX {
            return Err(EmailError::LocalPart);
        }
        if !domain.contains('.') || domain.split('.').any(str::is_empty) {
            return Err(EmailError::Domain);
        }
        Ok(Self(value.to_owned()))
    }

    /// The address as the buyer typed it.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address with its domain lower-cased: what two spellings are compared by.
    pub fn normalized(&self) -> String {
        let (local, domain) = self.parts();
        format!("{local}@{}", domain.to_lowercase())
    }

    /// Local part and domain: [`Email::parse`] made sure of exactly one `@`.
    fn parts(&self) -> (&str, &str) {
        self.0.split_once('@').unwrap_or((self.0.as_str(), ""))
    }
}

impl PartialEq for Email {
    fn eq(&self, other: &Self) -> bool {
        self.normalized() == other.normalized()
    }
}

impl Eq for Email {}

/// Who bought an order, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buyer {
    pub name: BuyerName,
    pub email: Email,
}

impl Buyer {
    /// What the API answers with.
    pub fn view(&self) -> BuyerView {
        BuyerView {
            name: self.name.as_str().to_owned(),
            email: self.email.as_str().to_owned(),
        }
    }

    /// What makes two buyers one for a confirm's `Idempotency-Key`: the name and the
    /// normalized e-mail (a retry spelling the domain otherwise is the same request).
    pub fn identity(&self) -> (&str, String) {
        (self.name.as_str(), self.email.normalized())
    }
}

/// The buyer as orders and confirm answers show them (the e-mail as given).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BuyerView {
    pub name: String,
    pub email: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn request(name: &str, email: &str) -> BuyerRequest {
        BuyerRequest {
            name: name.to_owned(),
            email: email.to_owned(),
        }
    }

    fn fields_of(name: &str, email: &str) -> Vec<String> {
        match request(name, email).parse() {
            Ok(_) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.field).collect(),
        }
    }

    #[test]
    fn a_buyer_is_parsed_once_with_the_name_trimmed_and_the_email_as_given() {
        let buyer = request("  Ada Lovelace ", "Ada.L+tickets@Example.COM")
            .parse()
            .expect("valid");
        assert_eq!(buyer.name.as_str(), "Ada Lovelace");
        assert_eq!(buyer.email.as_str(), "Ada.L+tickets@Example.COM");
        assert_eq!(buyer.email.normalized(), "Ada.L+tickets@example.com");
        assert_eq!(
            buyer.view(),
            BuyerView {
                name: "Ada Lovelace".to_owned(),
                email: "Ada.L+tickets@Example.COM".to_owned()
            }
        );
        assert!(request("Zoë Ŝ. Ørsted", "zoë@bücher.example")
            .parse()
            .is_ok());
    }

    #[test]
    fn names_are_one_line_not_blank_and_bounded() {
        assert!(fields_of(&"é".repeat(BUYER_NAME_CHARS_MAX), "a@b.c").is_empty());
        for bad in [
            String::new(),
            " \t ".to_owned(),
            "   ".to_owned(),
            "x".repeat(BUYER_NAME_CHARS_MAX + 1),
            "Ada\nLovelace".to_owned(),
            "Ada\0".to_owned(),
            "Ada\u{85}".to_owned(),
        ] {
            assert_eq!(fields_of(&bad, "a@b.c"), [NAME_FIELD], "{bad:?}");
        }
    }

    #[test]
    fn emails_follow_each_rule_and_say_which_broke() {
        let local_max = "l".repeat(EMAIL_LOCAL_CHARS_MAX);
        let longest = format!("{local_max}@{}.com", "d".repeat(EMAIL_CHARS_MAX - 69));
        assert_eq!(longest.chars().count(), EMAIL_CHARS_MAX);
        for ok in ["a@b.c", "ada@example.com", &longest, "o'neil@mail.co.uk"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        let cases = [
            (format!("{longest}x"), EmailError::TooLong),
            ("ada @example.com".to_owned(), EmailError::Forbidden(0x20)),
            ("ada@example.com\n".to_owned(), EmailError::Forbidden(0x0A)),
            (
                "ada\u{a0}@example.com".to_owned(),
                EmailError::Forbidden(0xA0),
            ),
            (
                "ada@exa\u{3000}mple.com".to_owned(),
                EmailError::Forbidden(0x3000),
            ),
            ("ada\0@example.com".to_owned(), EmailError::Forbidden(0)),
            ("ada.example.com".to_owned(), EmailError::NotOneAt),
            ("ada@@example.com".to_owned(), EmailError::NotOneAt),
            ("a@da@example.com".to_owned(), EmailError::NotOneAt),
            ("@example.com".to_owned(), EmailError::LocalPart),
            (format!("{local_max}l@example.com"), EmailError::LocalPart),
            ("ada@localhost".to_owned(), EmailError::Domain),
            ("ada@".to_owned(), EmailError::Domain),
            ("ada@.example.com".to_owned(), EmailError::Domain),
            ("ada@example.com.".to_owned(), EmailError::Domain),
            ("ada@example..com".to_owned(), EmailError::Domain),
        ];
        for (bad, why) in cases {
            assert_eq!(Email::parse(&bad).err(), Some(why), "{bad:?}");
            assert_eq!(fields_of("Ada", &bad), [EMAIL_FIELD], "{bad:?}");
        }
    }

    #[test]
    fn every_broken_field_is_reported_at_once() {
        assert_eq!(fields_of(" ", "nope"), [NAME_FIELD, EMAIL_FIELD]);
    }

    #[test]
    fn unknown_fields_in_buyer_are_refused() {
        let body = r#"{"name":"Ada","email":"ada@example.com","phone":"1"}"#;
        assert!(serde_json::from_str::<BuyerRequest>(body).is_err());
    }

    #[test]
    fn addresses_compare_with_the_domain_lower_cased_only() {
        let email = |s: &str| Email::parse(s).expect(s);
        assert_eq!(email("ada@EXAMPLE.com"), email("ada@example.com"));
        assert_ne!(email("Ada@example.com"), email("ada@example.com"));
        let buyer = |e: &str| {
            let buyer = request("Ada", e).parse().expect(e);
            let (name, email) = buyer.identity();
            (name.to_owned(), email)
        };
        assert_eq!(buyer("ada@Example.com"), buyer("ada@example.com"));
        assert_ne!(buyer("ADA@example.com"), buyer("ada@example.com"));
    }

    /// The document's pattern, compiled as the matching engine reads it.
    fn document_rule() -> regex_automata::meta::Regex {
        regex_automata::meta::Regex::new(EMAIL_PATTERN).expect("EMAIL_PATTERN compiles")
    }

    /// Text made mostly of what addresses are made of, and of what they must not contain.
    fn address_like() -> impl Strategy<Value = String> {
        let pieces = prop_oneof![
            4 => "[a-zA-Z0-9]{1,8}",
            3 => Just("@".to_owned()),
            3 => Just(".".to_owned()),
            1 => Just("é".to_owned()),
            1 => prop::sample::select(vec![
                " ", "\t", "\0", "\u{7f}", "\u{85}", "\u{a0}", "\u{1680}", "\u{2009}",
                "\u{2028}", "\u{202f}", "\u{3000}", "\u{feff}", "\u{200b}", "+", "'",
            ])
            .prop_map(str::to_owned),
        ];
        prop::collection::vec(pieces, 0..12).prop_map(|p| p.concat())
    }

    proptest! {
        /// The document and the rule agree, whatever the text: what schemathesis generates
        /// from the `pattern` is accepted, what breaks it is refused (the length bounds
        /// aside, which the document states as `maxLength`).
        #[test]
        fn the_email_pattern_is_the_rule(text in address_like()) {
            let by_document = document_rule().is_match(&text);
            prop_assert_eq!(Email::parse(&text).is_ok(), by_document, "{:?}", text);
        }

        #[test]
        fn addresses_generated_from_the_pattern_parse_as_given(
            text in proptest::string::string_regex(
                EMAIL_PATTERN.trim_start_matches('^').trim_end_matches('$'),
            ).expect("a generator for the pattern"),
        ) {
            prop_assume!(text.chars().count() <= EMAIL_CHARS_MAX);
            let email = Email::parse(&text);
            prop_assert!(email.is_ok(), "{:?}", text);
            prop_assert_eq!(email.map(|e| e.as_str().to_owned()).ok(), Some(text));
        }
    }
}
