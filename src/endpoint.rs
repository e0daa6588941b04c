//! What a URL a user gives means: the base of an API (`http://h:p`,
//! `http://h:p/v1`, a gateway's `http://gw/openai/v1`) or one of its
//! endpoints given whole (`http://h:p/v1/chat/completions`, as gateways'
//! docs print them).
//!
//! periscope appends each request's path to a base, so a whole endpoint is
//! split back into its base and the [`Api`] it names; the plan then checks
//! that API against what the workload sends, and an endpoint of another API
//! is a usage error naming both. A leaf: it imports nothing of the crate.

/// An API endpoint a URL can name whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    ChatCompletions,
    /// Legacy text completions (`/v1/completions`).
    Completions,
    Embeddings,
    Responses,
    Messages,
    Rerank,
    /// OTLP/HTTP trace exports (`/v1/traces`).
    Traces,
}

impl Api {
    /// Longest first: `chat/completions` is tried before `completions`.
    const BY_SUFFIX: [Api; 7] = [
        Api::ChatCompletions,
        Api::Traces,
        Api::Completions,
        Api::Embeddings,
        Api::Responses,
        Api::Messages,
        Api::Rerank,
    ];

    /// The endpoint's path under its API's base (`chat/completions`); the
    /// traces path is from the OTLP base (`v1/traces`).
    pub fn path(self) -> &'static str {
        match self {
            Api::ChatCompletions => "chat/completions",
            Api::Completions => "completions",
            Api::Embeddings => "embeddings",
            Api::Responses => "responses",
            Api::Messages => "messages",
            Api::Rerank => "rerank",
            Api::Traces => "v1/traces",
        }
    }

    /// How a message names it: `/chat/completions (chat completions)`.
    pub fn describe(self) -> &'static str {
        match self {
            Api::ChatCompletions => "/chat/completions (chat completions)",
            Api::Completions => "/completions (legacy text completions)",
            Api::Embeddings => "/embeddings (embeddings)",
            Api::Responses => "/responses (OpenAI's Responses API)",
            Api::Messages => "/messages (Anthropic's Messages API)",
            Api::Rerank => "/rerank (rerank)",
            Api::Traces => "/v1/traces (OTLP trace exports)",
        }
    }

    /// The API a request path (`chat/completions`, `/v1/traces`) is on.
    pub fn of_path(path: &str) -> Option<Api> {
        let p = path.trim_matches('/');
        Self::BY_SUFFIX.into_iter().find(|a| p == a.path())
    }
}

/// A URL split into the base requests are sent under and the endpoint it
/// named, if it named one whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiUrl {
    /// No trailing `/`. A bare origin gets `/v1`; a whole endpoint's base is
    /// kept as it was (`http://tei:8080/rerank` → `http://tei:8080`).
    pub base: String,
    /// The endpoint the URL named whole.
    pub endpoint: Option<Api>,
}

impl ApiUrl {
    /// The URL of `api` under this base.
    pub fn url_of(&self, api: Api) -> String {
        format!("{}/{}", self.base, api.path())
    }

    /// Whether the URL named an endpoint that none of `sent` is: the
    /// one-line error naming both, for `flag` (`--target`, `--url`, …).
    pub fn check(&self, flag: &str, what: &str, sent: &[Api]) -> Result<(), String> {
        match self.endpoint {
            Some(e) if !sent.is_empty() && !sent.contains(&e) => Err(format!(
                "{flag} names the {} endpoint, but {what} sends to {}: give the base URL ({}) or the matching endpoint",
                e.describe(),
                sent.iter().map(|a| a.describe()).collect::<Vec<_>>().join(" and "),
                self.base
            )),
            _ => Ok(()),
        }
    }
}

/// Parse an http(s) URL with a host, naming `flag` in the error.
pub fn parse_http(flag: &str, url: &str) -> Result<reqwest::Url, String> {
    let parsed = reqwest::Url::parse(url.trim()).map_err(|e| {
        format!("{flag} '{url}' is not a URL ({e}): expected e.g. http://localhost:8000/v1")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "{flag} '{url}' must start with http:// or https://"
        ));
    }
    if parsed.host_str().is_none() {
        return Err(format!("{flag} '{url}' has no host"));
    }
    Ok(parsed)
}

/// Split a URL given for `flag` into a base and the endpoint it named.
/// `http://h:p` and `http://h:p/` are `http://h:p/v1`; any other path is a
/// base (gateways mount the API elsewhere) unless it ends in an endpoint's
/// path. A query string or fragment is refused: requests are sent to paths
/// under the base, where they would be lost.
pub fn split(flag: &str, url: &str) -> Result<ApiUrl, String> {
    let parsed = parse_http(flag, url)?;
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(format!(
            "{flag} '{url}' has a query string: give the base URL without it (headers go in --header)"
        ));
    }
    let full = parsed.as_str().trim_end_matches('/');
    let path = parsed.path().trim_end_matches('/');
    if path.is_empty() {
        return Ok(ApiUrl {
            base: format!("{full}/v1"),
            endpoint: None,
        });
    }
    for api in Api::BY_SUFFIX {
        let suffix = api.path();
        if let Some(rest) = path.strip_suffix(suffix) {
            if rest.ends_with('/') {
                let base = &full[..full.len() - suffix.len() - 1];
                return Ok(ApiUrl {
                    base: base.to_string(),
                    endpoint: Some(api),
                });
            }
        }
    }
    Ok(ApiUrl {
        base: full.to_string(),
        endpoint: None,
    })
}

/// The Prometheus metrics URL a `--server-metrics` value means: a
/// `/metrics` URL (or any path of a scrape target's own) as it is; a bare
/// origin, an API base (`…/v1`) or a whole API endpoint is the server's
/// origin + `/metrics`, where vLLM, SGLang, llama.cpp and TGI serve them.
pub fn metrics_url(flag: &str, url: &str) -> Result<String, String> {
    let parsed = parse_http(flag, url)?;
    let path = parsed.path().trim_end_matches('/');
    let api_like = path.is_empty()
        || path.ends_with("/v1")
        || split(flag, url).is_ok_and(|s| s.endpoint.is_some());
    match (api_like, origin(url)) {
        (true, Some(o)) => Ok(format!("{o}/metrics")),
        _ => Ok(url.trim().to_string()),
    }
}

/// A URL as it may be shown: no user name, no password, no query (where
/// gateways take keys).
pub fn shown(url: &str) -> String {
    reqwest::Url::parse(url)
        .map(|mut u| {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.to_string()
        })
        .unwrap_or_else(|_| url.to_string())
}

/// The origin of a URL (`http://h:p`), for what a server serves at its
/// root (`/metrics`, `/tokenize`).
pub fn origin(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{}://{host}:{p}", u.scheme()),
        None => format!("{}://{host}", u.scheme()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> (String, Option<Api>) {
        let s = split("--url", url).unwrap();
        (s.base, s.endpoint)
    }

    #[test]
    fn a_base_is_kept_and_a_bare_origin_gets_v1() {
        for (url, base) in [
            ("http://127.0.0.1:8000", "http://127.0.0.1:8000/v1"),
            ("http://127.0.0.1:8000/", "http://127.0.0.1:8000/v1"),
            ("http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"),
            ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
            (
                "https://gw.example/openai/v1",
                "https://gw.example/openai/v1",
            ),
            ("http://[::1]:9/v1", "http://[::1]:9/v1"),
        ] {
            assert_eq!(ok(url), (base.to_string(), None), "{url}");
        }
    }

    #[test]
    fn a_whole_endpoint_is_split_into_its_base_and_api() {
        for (url, base, api) in [
            (
                "http://192.168.1.107:8081/v1/chat/completions",
                "http://192.168.1.107:8081/v1",
                Api::ChatCompletions,
            ),
            (
                "http://h/v1/chat/completions/",
                "http://h/v1",
                Api::ChatCompletions,
            ),
            ("http://h/v1/completions", "http://h/v1", Api::Completions),
            ("http://h/v1/embeddings", "http://h/v1", Api::Embeddings),
            ("http://h/v1/responses", "http://h/v1", Api::Responses),
            (
                "https://api.anthropic.com/v1/messages",
                "https://api.anthropic.com/v1",
                Api::Messages,
            ),
            ("http://tei:8080/rerank", "http://tei:8080", Api::Rerank),
            ("http://h/v1/rerank", "http://h/v1", Api::Rerank),
            (
                "https://api.braintrust.dev/otel/v1/traces",
                "https://api.braintrust.dev/otel",
                Api::Traces,
            ),
            (
                "http://gw/openai/deployments/x/chat/completions",
                "http://gw/openai/deployments/x",
                Api::ChatCompletions,
            ),
        ] {
            assert_eq!(ok(url), (base.to_string(), Some(api)), "{url}");
            assert_eq!(
                split("--url", url).unwrap().url_of(api),
                format!("{base}/{}", api.path())
            );
        }
        // Only whole path segments: a base that merely ends in the letters is a base.
        assert_eq!(ok("http://h/mycompletions").1, None);
        assert_eq!(ok("http://h/v1/chat/completionsx").1, None);
    }

    #[test]
    fn an_endpoint_of_another_api_is_an_error_naming_both() {
        let u = split("--target", "http://h/v1/embeddings").unwrap();
        let e = u
            .check(
                "--target",
                "the completions workload",
                &[Api::ChatCompletions],
            )
            .unwrap_err();
        assert!(
            e.contains("/embeddings") && e.contains("/chat/completions"),
            "{e}"
        );
        assert!(e.contains("http://h/v1"), "{e}");
        assert!(u.check("--target", "x", &[Api::Embeddings]).is_ok());
        assert!(split("--target", "http://h/v1")
            .unwrap()
            .check("--target", "x", &[Api::Rerank])
            .is_ok());
    }

    #[test]
    fn bad_urls_say_what_to_type() {
        assert!(split("--url", "localhost:8000")
            .unwrap_err()
            .contains("http://"));
        assert!(split("--url", "ftp://x").unwrap_err().contains("http://"));
        let q = split("--url", "http://h/v1/chat/completions?api-version=1").unwrap_err();
        assert!(q.contains("query"), "{q}");
    }

    #[test]
    fn paths_name_their_api() {
        assert_eq!(Api::of_path("chat/completions"), Some(Api::ChatCompletions));
        assert_eq!(Api::of_path("/v1/traces"), Some(Api::Traces));
        assert_eq!(Api::of_path("/health"), None);
        assert_eq!(
            origin("http://h:8000/v1/x").as_deref(),
            Some("http://h:8000")
        );
    }

    #[test]
    fn server_metrics_urls_from_a_base_or_an_endpoint() {
        for (url, want) in [
            ("http://h:8000/metrics", "http://h:8000/metrics"),
            ("http://h:9100/federate", "http://h:9100/federate"),
            ("http://h:8000", "http://h:8000/metrics"),
            ("http://h:8000/v1", "http://h:8000/metrics"),
            ("http://h:8000/v1/chat/completions", "http://h:8000/metrics"),
        ] {
            assert_eq!(metrics_url("--server-metrics", url).unwrap(), want, "{url}");
        }
        assert!(metrics_url("--server-metrics", "h:8000").is_err());
    }
}
