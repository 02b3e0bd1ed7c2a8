//! Observe the analysis: read each metric of the Rollout's templates for both
//! arms, fold it into the judge's stored state, and combine the verdicts.
//! The judges are pure; this file does the reading and the bookkeeping.

use jiff::Timestamp;
use kube::{Api, Client, ResourceExt};

use crate::analysis::Verdict;
use crate::analysis::judge::{Arms, Counts, Histogram, JudgeSpec, Observation};
use crate::analysis::provider::{Connection, MetricProvider, ProviderInput, provider_for};
use crate::analysis::query::Variables;
pub use crate::analysis::status::{AnalysisStatus, MetricStatus};
use crate::api::analysis_template::{AnalysisTemplateSpec, MetricSpec};
use crate::api::{AnalysisTemplate, ClusterAnalysisTemplate, Rollout};
use crate::egress::{Egress, METRIC_SLOT_WAIT, Purpose};

impl AnalysisStatus {
    pub fn from_rollout(rollout: &Rollout) -> Option<AnalysisStatus> {
        AnalysisStatus::from_value(rollout.status.as_ref()?.analysis.as_ref()?)
    }
}

/// Whether the Rollout only watches this metric, acting on nothing.
fn dry_run(rollout: &Rollout, metric: &str) -> bool {
    rollout
        .spec
        .analysis
        .as_ref()
        .is_some_and(|a| a.dry_run || a.dry_run_metrics.iter().any(|m| m == metric))
}

/// The canary to compare with stable now, as the step engine sees it.
fn comparing(rollout: &Rollout) -> Option<String> {
    crate::plan::measured_canary(&rollout.spec, rollout.status.as_ref()?)
}

/// The analysis for the Rollout's current canary, or `None` when there is
/// nothing to compare (no analysis, no requests to the canary yet).
pub async fn evaluate(
    client: &Client,
    egress: &Egress,
    (ns, home_ns): (&str, &str),
    rollout: &Rollout,
    now: Timestamp,
) -> Option<AnalysisStatus> {
    let canary = comparing(rollout)?;
    let previous = AnalysisStatus::from_rollout(rollout).filter(|a| a.canary == canary);
    let Some(mut next) = AnalysisStatus::begin(previous.as_ref(), &canary, now) else {
        return previous;
    };
    let window = (next.since.unwrap_or(now), now);
    let metrics = match templates(client, (ns, home_ns), rollout).await {
        Ok(metrics) => metrics,
        Err(detail) => {
            next.verdict = Some(Verdict::Inconclusive);
            next.metrics.insert(
                "templates".into(),
                MetricStatus {
                    verdict: Verdict::Inconclusive,
                    detail: Some(detail),
                    dry_run: false,
                    judge: JudgeSpec::default().initial_state(),
                },
            );
            return Some(next);
        }
    };
    let count = metrics.len();
    let service = &rollout.spec.service;
    let stable_revision = rollout
        .status
        .as_ref()
        .and_then(|s| s.stable_revision.clone())
        .unwrap_or_default();
    for (metric, vars, secrets_ns) in metrics {
        let vars = with_window(vars, window);
        let vars = ArmVariables {
            stable: arm_vars(&vars, (&service.stable_name(), &stable_revision)),
            canary: arm_vars(&vars, (&service.canary_name(), &canary)),
        };
        let judge = metric.judge.split_alpha(count);
        let reading = Reading {
            client,
            egress,
            ns,
            secrets_ns: &secrets_ns,
        };
        let (observation, detail) = observe_metric(&reading, &metric, &vars).await;
        let dry_run = dry_run(rollout, &metric.name);
        next.fold(previous.as_ref(), (&metric.name, &judge), &observation, detail, dry_run);
    }
    next.conclude(previous.as_ref(), now);
    Some(next)
}

/// Every metric of every referenced template, with its query variables
/// and the namespace its Secrets are read from: a ClusterAnalysisTemplate
/// is the operator's, so its Secrets live with the controller (`home_ns`);
/// an AnalysisTemplate's live beside it, in the Rollout's namespace.
async fn templates(
    client: &Client,
    (ns, home_ns): (&str, &str),
    rollout: &Rollout,
) -> Result<Vec<(MetricSpec, Variables, String)>, String> {
    let Some(analysis) = &rollout.spec.analysis else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    for reference in &analysis.templates {
        let spec: AnalysisTemplateSpec = if reference.cluster_scope {
            let api: Api<ClusterAnalysisTemplate> = Api::all(client.clone());
            match api.get_opt(&reference.name).await {
                Ok(Some(t)) => t.spec.template,
                Ok(None) => return Err(format!("ClusterAnalysisTemplate {} not found", reference.name)),
                Err(e) => return Err(format!("reading ClusterAnalysisTemplate {}: {e}", reference.name)),
            }
        } else {
            let api: Api<AnalysisTemplate> = Api::namespaced(client.clone(), ns);
            match api.get_opt(&reference.name).await {
                Ok(Some(t)) => t.spec,
                Ok(None) => return Err(format!("AnalysisTemplate {ns}/{} not found", reference.name)),
                Err(e) => return Err(format!("reading AnalysisTemplate {ns}/{}: {e}", reference.name)),
            }
        };
        let name = if reference.cluster_scope {
            format!("ClusterAnalysisTemplate {}", reference.name)
        } else {
            format!("AnalysisTemplate {ns}/{}", reference.name)
        };
        let vars = spec
            .variables(&name, (ns, &rollout.name_any()), &analysis.args)
            .map_err(|e| e.to_string())?;
        let secrets_ns = if reference.cluster_scope { home_ns } else { ns };
        out.extend(
            spec.metrics
                .into_iter()
                .map(|m| (m, vars.clone(), secrets_ns.to_string())),
        );
    }
    Ok(out)
}

/// `{{since}}` and `{{now}}` (Unix seconds), `{{sinceMillis}}` and
/// `{{nowMillis}}`: a provider that counts over a time range (a SaaS API)
/// reads the analysis' whole window, so its counts are cumulative like a
/// Prometheus counter.
fn with_window(vars: Variables, (since, now): (Timestamp, Timestamp)) -> Variables {
    vars.with("since", since.as_second().to_string())
        .with("now", now.as_second().to_string())
        .with("sinceMillis", since.as_millisecond().to_string())
        .with("nowMillis", now.as_millisecond().to_string())
}

fn arm_vars(vars: &Variables, rollout_service: (&str, &str)) -> Variables {
    vars.clone()
        .with("service", rollout_service.0)
        .with("revision", rollout_service.1)
}

/// Where a metric is read, and with what.
struct Reading<'a> {
    client: &'a Client,
    egress: &'a Egress,
    /// The Rollout's namespace, whose outbound slots the query takes.
    ns: &'a str,
    secrets_ns: &'a str,
}

/// Reads one metric for both arms. Anything missing is `Observation::Missing`
/// with a detail naming the query and the cause.
async fn observe_metric(
    reading: &Reading<'_>,
    metric: &MetricSpec,
    vars: &ArmVariables,
) -> (Observation, Option<String>) {
    match read_metric(reading, metric, vars).await {
        Ok(observation) => (observation, None),
        Err(detail) => (Observation::Missing, Some(detail)),
    }
}

/// Query variables of both arms.
pub struct ArmVariables {
    pub stable: Variables,
    pub canary: Variables,
}

async fn read_metric(reading: &Reading<'_>, metric: &MetricSpec, vars: &ArmVariables) -> Result<Observation, String> {
    let connection_spec = metric.provider.connection();
    let secrets = super::credentials::read(reading.client, reading.secrets_ns, connection_spec).await?;
    let connection = Connection::resolve(connection_spec, &secrets).map_err(|e| e.to_string())?;
    let provider = |vars| {
        provider_for(ProviderInput {
            spec: &metric.provider,
            egress: reading.egress,
            connection: connection.clone(),
            vars,
        })
        .map_err(|e| e.to_string())
    };
    let (stable, canary) = (provider(&vars.stable)?, provider(&vars.canary)?);
    // Missing data, which the judges take as inconclusive, never a pass.
    let slot = reading
        .egress
        .slot_within(Purpose::MetricQuery, reading.ns, METRIC_SLOT_WAIT)
        .await;
    let Some(_slot) = slot else {
        return Err("no outbound slot free".into());
    };
    if let Some(q) = &metric.counts {
        let stable = read_counts(&*stable, &q.total, &q.errors, &vars.stable).await?;
        let canary = read_counts(&*canary, &q.total, &q.errors, &vars.canary).await?;
        return Ok(Observation::Counts(Arms { stable, canary }));
    }
    if let Some(q) = &metric.histogram {
        let stable = read_histogram(&*stable, &q.buckets, &vars.stable).await?;
        let canary = read_histogram(&*canary, &q.buckets, &vars.canary).await?;
        return Ok(Observation::Histogram(Arms { stable, canary }));
    }
    if let Some(q) = &metric.value {
        let query = vars.canary.render(&q.query).map_err(|e| e.to_string())?;
        let value = canary.scalar(&query).await.map_err(|e| e.to_string())?;
        return value
            .map(Observation::Value)
            .ok_or_else(|| format!("query {query:?} returned no data"));
    }
    Err("the metric has no counts, histogram or value query".into())
}

async fn read_counts(p: &dyn MetricProvider, total: &str, errors: &str, vars: &Variables) -> Result<Counts, String> {
    let total = vars.render(total).map_err(|e| e.to_string())?;
    let errors = vars.render(errors).map_err(|e| e.to_string())?;
    let requests = p.scalar(&total).await.map_err(|e| e.to_string())?;
    let requests = requests.ok_or_else(|| format!("query {total:?} returned no data"))?;
    // Error series appear only once an error happened: none yet is zero.
    let failed = p.scalar(&errors).await.map_err(|e| e.to_string())?.unwrap_or(0.0);
    Ok(Counts {
        requests,
        errors: failed,
    })
}

async fn read_histogram(p: &dyn MetricProvider, buckets: &str, vars: &Variables) -> Result<Histogram, String> {
    let query = vars.render(buckets).map_err(|e| e.to_string())?;
    let series = p.by_label(&query, "le").await.map_err(|e| e.to_string())?;
    let pairs: Vec<(f64, f64)> = series
        .into_iter()
        .filter_map(|(le, v)| Some((if le == "+Inf" { f64::INFINITY } else { le.parse().ok()? }, v)))
        .collect();
    Histogram::from_cumulative(pairs).ok_or_else(|| format!("query {query:?} returned no usable buckets"))
}
