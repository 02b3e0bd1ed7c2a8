use serde_json::json;

use super::*;

#[test]
fn a_path_that_matches_nothing_is_an_error_not_zero() {
    let reply = json!({"series": []});
    assert_eq!(
        select(&reply, "$.series[0].pointlist[-1][1]"),
        Err("matched nothing in the reply".to_string())
    );
}

#[test]
fn a_value_that_is_not_a_number_is_an_error_naming_it() {
    let reply = json!({"total": "lots", "ok": "12.5", "n": 3});
    let matched = select(&reply, "$.total").expect("matched");
    assert_eq!(
        sum(&matched),
        Err(r#"matched "lots", which is not a number"#.to_string())
    );
    assert_eq!(sum(&select(&reply, "$.ok").expect("matched")), Ok(12.5));
    assert_eq!(sum(&select(&reply, "$.n").expect("matched")), Ok(3.0));
}

#[test]
fn several_matches_are_summed() {
    let reply = json!({"series": [{"v": 1}, {"v": 2.5}]});
    assert_eq!(sum(&select(&reply, "$.series[*].v").expect("matched")), Ok(3.5));
}

#[test]
fn an_invalid_path_says_so() {
    let error = select(&json!({}), "$[").expect_err("invalid");
    assert!(error.starts_with("is not a valid JSONPath"), "{error}");
}

#[test]
fn bad_json_and_refused_credentials_are_named() {
    assert_eq!(
        parse_reply(200, b"<html>"),
        Err("the reply is not JSON (syntax error)".to_string())
    );
    assert_eq!(
        parse_reply(401, b"{}"),
        Err("HTTP 401: the credentials were refused".to_string())
    );
    assert_eq!(
        parse_reply(403, b"{}"),
        Err("HTTP 403: the credentials may not read this".to_string())
    );
}

#[test]
fn buckets_come_as_an_object_or_pairs() {
    let reply = json!({"h": {"0.1": 3, "+Inf": "10"}, "p": [["0.1", 3], [0.5, 7]]});
    let h = buckets(&select(&reply, "$.h").expect("matched"));
    assert_eq!(h, Ok(vec![("+Inf".into(), 10.0), ("0.1".into(), 3.0)]));
    let p = buckets(&select(&reply, "$.p").expect("matched"));
    assert_eq!(p, Ok(vec![("0.1".into(), 3.0), ("0.5".into(), 7.0)]));
}

// The shipped web templates, on replies written in each vendor's
// documented shape (analysis-templates/fixtures/). None has been run
// against the live service; these show the request they build is well
// formed and that their JSONPaths read the documented reply.

mod shipped {
    use serde::Deserialize;
    use serde_json::Value;

    use super::super::{buckets, select, sum};
    use crate::analysis::query::Variables;
    use crate::api::ClusterAnalysisTemplate;
    use crate::api::analysis_template::{AnalysisTemplateSpec, MetricSpec, WebMethod};

    fn template(yaml: &str) -> AnalysisTemplateSpec {
        let template: ClusterAnalysisTemplate = serde_yaml::from_str(yaml).expect("a template");
        template.spec.template
    }

    /// The canary arm's variables, as the controller fills them.
    fn canary_vars(spec: &AnalysisTemplateSpec) -> Variables {
        spec.variables("shipped", ("shop", "cart"), &[])
            .expect("variables")
            .with("service", "cart-canary")
            .with("revision", "7d9f8c6b5")
            .with("since", "1764500000")
            .with("now", "1764500120")
            .with("sinceMillis", "1764500000000")
            .with("nowMillis", "1764500120000")
    }

    /// The request a metric's web provider sends: its URL and, for a POST,
    /// its body, which must be JSON.
    fn request(metric: &MetricSpec, vars: &Variables) -> (reqwest::Url, Option<Value>) {
        let web = metric.provider.web.as_ref().expect("a web provider");
        let url = vars.render_url(&web.url).expect("the URL renders");
        let url = reqwest::Url::parse(&url).expect("a URL");
        let body = (web.method == WebMethod::Post).then(|| {
            let text = vars
                .render(web.body.as_deref().unwrap_or(""))
                .expect("the body renders");
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("the body is JSON: {e}\n{text}"))
        });
        (url, body)
    }

    fn counts(metric: &MetricSpec, reply: &Value) -> (f64, f64) {
        let q = metric.counts.as_ref().expect("counts");
        let read = |path: &str| sum(&select(reply, path).expect("matched")).expect("a number");
        (read(&q.total), read(&q.errors))
    }

    fn fixture(name: &str) -> Value {
        let path = format!("{}/analysis-templates/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).expect("a JSON fixture")
    }

    #[test]
    fn datadog_reads_the_last_cumulative_point_of_each_query() {
        let spec = template(include_str!("../../../../analysis-templates/datadog.yaml"));
        let metric = &spec.metrics[0];
        let (url, body) = request(metric, &canary_vars(&spec));
        assert!(body.is_none(), "a GET");
        let query: String = url
            .query_pairs()
            .find(|(k, _)| k == "query")
            .map(|(_, v)| v.into_owned())
            .expect("a query");
        assert!(
            query.contains("kube_namespace:shop,kube_deployment:cart-7d9f8c6b5"),
            "{query}"
        );
        assert!(url.as_str().contains("from=1764500000&to=1764500120"), "{url}");
        assert_eq!(counts(metric, &fixture("datadog-query.json")), (1240.0, 9.0));
        let empty = fixture("datadog-no-data.json");
        let q = metric.counts.as_ref().expect("counts");
        assert_eq!(
            select(&empty, &q.total),
            Err("matched nothing in the reply".to_string())
        );
    }

    #[test]
    fn new_relic_reads_both_counts_of_one_nrql_query() {
        let spec = template(include_str!("../../../../analysis-templates/newrelic.yaml"));
        let metric = &spec.metrics[0];
        let (_, body) = request(metric, &canary_vars(&spec));
        let graphql = body.expect("a POST")["query"].as_str().expect("a query").to_string();
        assert!(graphql.contains("account(id: 1234567)"), "{graphql}");
        assert!(
            graphql.contains("K8S_NAMESPACE_NAME = 'shop' AND K8S_DEPLOYMENT_NAME = 'cart-7d9f8c6b5'"),
            "{graphql}"
        );
        assert!(graphql.contains("SINCE 1764500000000 UNTIL 1764500120000"), "{graphql}");
        assert_eq!(counts(metric, &fixture("newrelic-nrql.json")), (18342.0, 57.0));
        // A GraphQL error comes with HTTP 200 and no data: nothing matches.
        let q = metric.counts.as_ref().expect("counts");
        let error = select(&fixture("newrelic-error.json"), &q.total);
        assert_eq!(error, Err("matched nothing in the reply".to_string()));
    }

    #[test]
    fn cloudwatch_reads_the_newest_running_sum_of_each_expression() {
        let spec = template(include_str!("../../../../analysis-templates/cloudwatch.yaml"));
        let metric = &spec.metrics[0];
        let (_, body) = request(metric, &canary_vars(&spec));
        let body = body.expect("a POST");
        assert_eq!(body["StartTime"], 1764500000);
        assert_eq!(body["EndTime"], 1764500120);
        let dimensions = &body["MetricDataQueries"][0]["MetricStat"]["Metric"]["Dimensions"];
        assert_eq!(dimensions[0]["Value"], "shop");
        assert_eq!(dimensions[1]["Value"], "cart-canary");
        assert_eq!(
            counts(metric, &fixture("cloudwatch-getmetricdata.json")),
            (5120.0, 31.0)
        );
    }

    #[test]
    fn a_reply_in_another_shape_is_not_read_as_a_number() {
        let spec = template(include_str!("../../../../analysis-templates/cloudwatch.yaml"));
        let q = spec.metrics[0].counts.clone().expect("counts");
        let reply: Value = serde_json::json!({"MetricDataResults": [{"Id": "total", "Values": [{"v": 1}]}]});
        let matched = select(&reply, &q.total).expect("matched");
        assert_eq!(
            sum(&matched),
            Err(r#"matched {"v":1}, which is not a number"#.to_string())
        );
        let id = select(&reply, "$.MetricDataResults[0].Id").expect("matched");
        assert!(buckets(&id).is_err(), "a string is neither a number nor buckets");
    }

    #[test]
    fn every_shipped_template_deserializes_as_a_cluster_template() {
        for yaml in [
            include_str!("../../../../analysis-templates/datadog.yaml"),
            include_str!("../../../../analysis-templates/newrelic.yaml"),
            include_str!("../../../../analysis-templates/cloudwatch.yaml"),
        ] {
            let template = ClusterAnalysisTemplate::deserialize(serde_yaml::Deserializer::from_str(yaml));
            assert!(template.is_ok(), "{template:?}");
        }
    }
}
