//! problem+json answered by the edge itself (`served_by: "edge"`).

use tessera_domain::{ErrorCode, Problem};

/// A problem the edge answers, with a sentence for people.
pub fn edge(code: ErrorCode, detail: impl Into<String>) -> Problem {
    Problem::new(code)
        .with_detail(detail)
        .with_served_by("edge")
}

/// Marks a problem from the shared rules as answered by the edge.
pub fn from_rules(problem: Problem) -> Problem {
    problem.with_served_by("edge")
}

/// The JSON body. Serialising a `Problem` cannot fail (strings and numbers only); the
/// fallback keeps even that impossible case a valid problem.
pub fn body(problem: &Problem) -> Vec<u8> {
    serde_json::to_vec(problem).unwrap_or_else(|_| {
        br#"{"type":"https://tessera.dev/problems/internal","title":"Internal error","status":500,"code":"internal","served_by":"edge"}"#.to_vec()
    })
}

/// Whether a ledger answer's body is a problem with `code` (e.g. `sold_out`).
pub fn has_code(body: &[u8], code: ErrorCode) -> bool {
    #[derive(serde::Deserialize)]
    struct CodeOnly {
        code: Option<serde_json::Value>,
    }
    serde_json::from_slice::<CodeOnly>(body)
        .ok()
        .and_then(|p| p.code)
        .is_some_and(|c| c.as_str() == Some(code.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_problems_say_so() {
        let json: serde_json::Value =
            serde_json::from_slice(&body(&edge(ErrorCode::SoldOut, "none left"))).expect("json");
        assert_eq!(json["served_by"], "edge");
        assert_eq!(json["status"], 409);
        assert_eq!(json["code"], "sold_out");
    }

    #[test]
    fn sold_out_answers_are_recognised() {
        assert!(has_code(
            br#"{"code":"sold_out","status":409}"#,
            ErrorCode::SoldOut
        ));
        assert!(!has_code(
            br#"{"code":"insufficient_stock"}"#,
            ErrorCode::SoldOut
        ));
        assert!(!has_code(b"not json", ErrorCode::SoldOut));
        assert!(!has_code(br#"{"code":7}"#, ErrorCode::SoldOut));
    }
}
