//! spin.toml as the edge host reads it (`manifest::Manifest::parse`). Never panics; an
//! accepted manifest is version 2, every trigger names a declared component, every HTTP
//! route template parses and the router built from them answers a lookup without panicking.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;
use tessera_edge::manifest::Manifest;
use tessera_edge::routes::{Route, Router};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(manifest) = Manifest::parse(text, PathBuf::from("/fuzz")) else {
        return;
    };
    let mut routes = Vec::new();
    for trigger in &manifest.http {
        assert!(manifest.components.contains_key(&trigger.component));
        let route = Route::parse(&trigger.route).expect("an accepted route parses");
        routes.push((route, trigger.component.clone()));
    }
    for trigger in &manifest.redis {
        assert!(manifest.components.contains_key(&trigger.component));
        assert!(manifest.redis_address(trigger).is_some());
    }
    let router = Router::new(routes);
    for path in [
        "/",
        "/v1/events",
        "/v1/holds/x/confirm",
        text.lines().next().unwrap_or("/"),
    ] {
        if let Some((component, _)) = router.route(path) {
            assert!(manifest.components.contains_key(component));
        }
    }
});
