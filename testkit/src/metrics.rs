//! Prometheus text: fetching a scrape and summing the series of one metric.

/// `GET {base}/metrics`: the text of one scrape (`base` is an operations listener's URL).
pub async fn scrape(client: &reqwest::Client, base: &str) -> Result<String, reqwest::Error> {
    client
        .get(format!("{base}/metrics"))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await
}

/// Sum of the samples of `name` whose labels include every pair of `labels`.
pub fn sum_metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, rest) = series.split_once('{').unwrap_or((series, ""));
            (metric == name && has_labels(rest, labels)).then(|| value.parse::<f64>().ok())?
        })
        .sum()
}

/// Whether a series' label set (`a="x",b="y"}`) has every pair, each as a whole label:
/// the leading comma bounds the name, the closing quote the value.
fn has_labels(set: &str, labels: &[(&str, &str)]) -> bool {
    let set = format!(",{set}");
    labels
        .iter()
        .all(|(key, value)| set.contains(&format!(",{key}=\"{value}\"")))
}

#[cfg(test)]
mod tests {
    use super::sum_metric;

    const TEXT: &str = "# TYPE edge_outbound_requests_total counter
edge_outbound_requests_total{component=\"catalog\",method=\"GET\"} 3
edge_outbound_requests_total{component=\"holds\",method=\"GET\"} 1
edge_outbound_requests_total{component=\"holds\",method=\"POST\"} 2
edge_outbound_requests_totals{component=\"holds\",method=\"POST\"} 50
edge_kv_entries 7
";

    #[test]
    fn sums_the_series_that_have_every_label() {
        let sum =
            |labels: &[(&str, &str)]| sum_metric(TEXT, "edge_outbound_requests_total", labels);
        assert_eq!(sum(&[]), 6.0);
        assert_eq!(sum(&[("method", "GET")]), 4.0);
        assert_eq!(sum(&[("component", "holds"), ("method", "POST")]), 2.0);
        assert_eq!(sum(&[("component", "hold")]), 0.0, "a value matches whole");
        assert_eq!(sum(&[("ethod", "GET")]), 0.0, "a name matches whole");
        assert_eq!(sum_metric(TEXT, "edge_kv_entries", &[]), 7.0);
    }
}
