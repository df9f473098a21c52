//! Spin's HTTP route syntax and precedence: exact segments, `:name` parameters and a
//! trailing `/...` wildcard. The most specific route wins — a route without a wildcard
//! beats one with, then more literal segments, then more segments — so
//! `/v1/holds/:id/confirm` is chosen over `/v1/holds/...` whatever the manifest order.

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    template: String,
    segments: Vec<Segment>,
    wildcard: bool,
}

/// A matched route: its template and the values of its `:name` parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    pub template: &'a str,
    pub params: Vec<(String, String)>,
    /// The part of the path the wildcard matched (with its leading `/`), for `spin-path-info`.
    pub path_info: String,
}

impl Route {
    pub fn parse(template: &str) -> Result<Self, String> {
        if !template.starts_with('/') {
            return Err(format!("route `{template}` must start with `/`"));
        }
        let (body, wildcard) = match template.strip_suffix("/...") {
            Some(prefix) => (prefix, true),
            None => (template, false),
        };
        let mut segments = Vec::new();
        for part in body.split('/').filter(|s| !s.is_empty()) {
            if part.contains("...") {
                return Err(format!(
                    "route `{template}`: `...` is only allowed as the last segment"
                ));
            }
            segments.push(match part.strip_prefix(':') {
                Some(name) if !name.is_empty() => Segment::Param(name.to_owned()),
                Some(_) => return Err(format!("route `{template}`: empty parameter name")),
                None => Segment::Literal(part.to_owned()),
            });
        }
        Ok(Self {
            template: template.to_owned(),
            segments,
            wildcard,
        })
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    /// Higher is more specific.
    fn specificity(&self) -> (bool, usize, usize) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        (!self.wildcard, literals, self.segments.len())
    }

    fn matches(&self, path: &str) -> Option<RouteMatch<'_>> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        if parts.len() < self.segments.len()
            || (!self.wildcard && parts.len() != self.segments.len())
        {
            return None;
        }
        let mut params = Vec::new();
        for (segment, part) in self.segments.iter().zip(&parts) {
            match segment {
                Segment::Literal(lit) if lit == part => {}
                Segment::Literal(_) => return None,
                Segment::Param(name) => params.push((name.clone(), (*part).to_owned())),
            }
        }
        let rest = &parts[self.segments.len()..];
        let path_info = if rest.is_empty() {
            String::new()
        } else {
            format!("/{}", rest.join("/"))
        };
        Some(RouteMatch {
            template: &self.template,
            params,
            path_info,
        })
    }
}

/// The HTTP routes of an application, each pointing at a component id.
#[derive(Debug, Clone, Default)]
pub struct Router {
    routes: Vec<(Route, String)>,
}

impl Router {
    pub fn new(routes: impl IntoIterator<Item = (Route, String)>) -> Self {
        let mut routes: Vec<_> = routes.into_iter().collect();
        // Most specific first; a stable sort keeps manifest order among equals.
        routes.sort_by_key(|(route, _)| std::cmp::Reverse(route.specificity()));
        Self { routes }
    }

    /// The component serving `path` and how it matched, if any route does.
    pub fn route<'a>(&'a self, path: &str) -> Option<(&'a str, RouteMatch<'a>)> {
        self.routes
            .iter()
            .find_map(|(route, component)| route.matches(path).map(|m| (component.as_str(), m)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        Router::new(
            [
                ("/v1/holds/...", "holds"),
                ("/v1/events", "catalog"),
                ("/v1/events/:event_id", "catalog"),
                ("/v1/shows/:show_id/availability", "catalog"),
                ("/v1/holds", "holds"),
                ("/...", "fallback"),
            ]
            .map(|(r, c)| (Route::parse(r).expect("route"), c.to_owned())),
        )
    }

    #[test]
    fn most_specific_route_wins_regardless_of_order() {
        let r = router();
        assert_eq!(r.route("/v1/holds").map(|m| m.0), Some("holds"));
        let (component, m) = r.route("/v1/holds/abc/confirm").expect("match");
        assert_eq!(
            (component, m.template, m.path_info.as_str()),
            ("holds", "/v1/holds/...", "/abc/confirm")
        );
        let (component, m) = r.route("/v1/shows/s1/availability").expect("match");
        assert_eq!(component, "catalog");
        assert_eq!(m.params, vec![("show_id".to_owned(), "s1".to_owned())]);
        assert_eq!(r.route("/v1/events/e1").map(|m| m.0), Some("catalog"));
        assert_eq!(r.route("/v1/events/e1/x").map(|m| m.0), Some("fallback"));
        assert_eq!(r.route("/").map(|m| m.0), Some("fallback"));
        // The storefront's deep paths (client routes, nested assets) reach the catch-all.
        let (component, m) = r
            .route("/assets/0123456789ab/js/views/e.js")
            .expect("match");
        assert_eq!(
            (component, m.path_info.as_str()),
            ("fallback", "/assets/0123456789ab/js/views/e.js")
        );
    }

    #[test]
    fn no_route_without_a_catch_all() {
        let r = Router::new([(Route::parse("/v1/events").expect("route"), "c".to_owned())]);
        assert!(r.route("/v1/eventsx").is_none());
        assert!(r.route("/v1").is_none());
        assert!(Route::parse("v1").is_err());
        assert!(Route::parse("/a/.../b").is_err());
        assert!(Route::parse("/a/:").is_err());
    }
}
