//! Observe: read the world a Rollout touches into the engine's plain data.
//! Reads only; nothing here writes.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Client, ResourceExt};

use super::Error;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use crate::api::{ADOPT_ANNOTATION, ManualRequest, REVISION_LABEL, ROLLOUT_LABEL, Rollout, revision_hash};
use crate::plan::{Observed, RevisionState, RouteState, ServiceSelectors};
use crate::routing::{RoutingError, TrafficRouter};

/// The pod template the spec asks for, and the `workloadRef` Deployment's
/// replicas when the template comes from there. `None` template: the
/// referenced Deployment does not exist (yet).
pub struct DesiredTemplate {
    pub template: Option<PodTemplateSpec>,
    pub workload_ref_replicas: Option<i32>,
    /// Why the `workloadRef` Deployment may not be taken over, if it may not.
    pub not_adopted: Option<String>,
}

/// Whether `rollout` may manage an object it finds: one it created (labelled
/// with its name) or one whose owner opted it in by annotation.
fn adopted_by(meta: &ObjectMeta, rollout: &str) -> bool {
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(ROLLOUT_LABEL))
        .map(String::as_str)
        == Some(rollout);
    let annotated = meta
        .annotations
        .as_ref()
        .and_then(|a| a.get(ADOPT_ANNOTATION))
        .map(String::as_str)
        == Some(rollout);
    labelled || annotated
}

fn not_adopted(kind: &str, ns: &str, name: &str, rollout: &str, what: &str) -> String {
    format!(
        "{kind} {ns}/{name} exists and was not created by Siskin; {what} only once it is annotated {ADOPT_ANNOTATION}={rollout}"
    )
}

pub async fn desired_template(client: &Client, ns: &str, rollout: &Rollout) -> Result<DesiredTemplate, Error> {
    if let Some(template) = &rollout.spec.template {
        return Ok(DesiredTemplate {
            template: Some(template.clone()),
            workload_ref_replicas: None,
            not_adopted: None,
        });
    }
    let Some(reference) = &rollout.spec.workload_ref else {
        return Ok(DesiredTemplate {
            template: None,
            workload_ref_replicas: None,
            not_adopted: None,
        });
    };
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    let Some(workload) = deployments.get_opt(&reference.name).await? else {
        return Ok(DesiredTemplate {
            template: None,
            workload_ref_replicas: None,
            not_adopted: None,
        });
    };
    let rollout_name = rollout.name_any();
    let refused = (!adopted_by(&workload.metadata, &rollout_name)).then(|| {
        let what = "Siskin takes its pod template and scales it to zero";
        not_adopted("Deployment", ns, &reference.name, &rollout_name, what)
    });
    let spec = workload.spec.unwrap_or_default();
    Ok(DesiredTemplate {
        template: Some(spec.template),
        workload_ref_replicas: Some(spec.replicas.unwrap_or(1)),
        not_adopted: refused,
    })
}

/// Siskin's own Deployments and Services (labelled with their Rollout), as
/// the controller's watches keep them: a reconcile reads them here instead
/// of asking the API server. A copy may trail the server by a watch event;
/// the write that follows a stale read is either idempotent (an apply) or
/// guarded (a scale tests the replicas it read), and the event itself wakes
/// the Rollout again.
#[derive(Clone)]
pub struct OwnedObjects {
    pub deployments: Store<Deployment>,
    pub services: Store<Service>,
}

impl OwnedObjects {
    /// Waits, within `limit`, until both watches have listed once: before
    /// that an empty cache would read as "nothing deployed".
    pub async fn wait_until_listed(&self, limit: std::time::Duration) -> Result<(), Error> {
        let listed = async {
            self.deployments.wait_until_ready().await?;
            self.services.wait_until_ready().await
        };
        match tokio::time::timeout(limit, listed).await {
            Ok(Ok(())) => Ok(()),
            _ => Err(Error::CacheNotReady),
        }
    }

    /// Every Siskin-owned Deployment of this Rollout, by revision.
    fn revisions(&self, ns: &str, rollout: &str) -> Vec<(String, Deployment)> {
        let mut found: Vec<(String, Deployment)> = self
            .deployments
            .state()
            .into_iter()
            .filter(|d| {
                d.namespace().as_deref() == Some(ns)
                    && d.labels().get(ROLLOUT_LABEL).map(String::as_str) == Some(rollout)
            })
            .filter_map(|d| Some((d.labels().get(REVISION_LABEL)?.clone(), d.as_ref().clone())))
            .collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
    }

    /// The Service of that name: from the cache, which holds only Siskin's
    /// own (labelled) Services; otherwise read, because a Service of that
    /// name that Siskin did not create must be seen, and refused, rather
    /// than taken over by the next apply.
    async fn service(&self, client: &Client, ns: &str, name: &str) -> Result<Option<Service>, Error> {
        if let Some(cached) = self.services.get(&ObjectRef::new(name).within(ns)) {
            return Ok(Some(cached.as_ref().clone()));
        }
        let services: Api<Service> = Api::namespaced(client.clone(), ns);
        Ok(services.get_opt(name).await?)
    }
}

/// What the caches keep of a Deployment: all but its pod template (the
/// spec's template is what gets deployed, never the copy) and its field
/// managers.
pub fn slim_deployment(deployment: &mut Deployment) {
    deployment.managed_fields_mut().clear();
    if let Some(spec) = deployment.spec.as_mut() {
        spec.template = PodTemplateSpec::default();
    }
}

fn revision_state(revision: &str, d: &Deployment) -> RevisionState {
    let status = d.status.clone().unwrap_or_default();
    let generation = d.metadata.generation.unwrap_or(0);
    RevisionState {
        revision: revision.to_string(),
        replicas: d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        available_replicas: status.available_replicas.unwrap_or(0),
        current: status.observed_generation.unwrap_or(0) >= generation,
    }
}

/// The revision a Siskin-managed Service selects; a Service of that name
/// that Siskin did not create is reported in `refused` and read as absent.
fn selected_revision(
    found: Option<Service>,
    (ns, name): (&str, &str),
    rollout: &str,
    (refused, managed): (&mut Vec<String>, &mut Vec<Service>),
) -> Option<String> {
    let service = found?;
    if !adopted_by(&service.metadata, rollout) {
        refused.push(not_adopted("Service", ns, name, rollout, "Siskin manages its selector"));
        return None;
    }
    let selected = service
        .spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|sel| sel.get(REVISION_LABEL).cloned());
    managed.push(service);
    selected
}

/// What one observation found: the engine's input, plus what acting on its
/// plan needs (the template to deploy, the Deployments by revision).
pub struct World {
    pub observed: Observed,
    pub template: Option<PodTemplateSpec>,
    pub deployments: Vec<(String, Deployment)>,
    /// The stable and canary Services Siskin manages, as found.
    pub services: Vec<Service>,
}

/// Reads everything the engine needs about one Rollout.
/// The Rollout's own objects come from the watch caches; the route and a
/// `workloadRef` Deployment (objects of the user's) are read, at once.
pub async fn observe(
    (client, cached): (&Client, &OwnedObjects),
    ns: &str,
    rollout: &Rollout,
    router: Option<&dyn TrafficRouter>,
) -> Result<World, Error> {
    let name = rollout.name_any();
    let route = async {
        match router {
            None => Ok(None),
            Some(router) => match router.observe().await {
                Ok(state) => Ok(Some(state)),
                Err(RoutingError::NotFound { .. }) => Ok(Some(RouteState::NotFound)),
                Err(e) => Err(Error::from(e)),
            },
        }
    };
    let (desired, route) = futures::future::try_join(desired_template(client, ns, rollout), route).await?;
    let owned = cached.revisions(ns, &name);
    let mut refused: Vec<String> = desired.not_adopted.clone().into_iter().collect();
    let (stable, canary) = (rollout.spec.service.stable_name(), rollout.spec.service.canary_name());
    let (stable_found, canary_found) =
        futures::future::try_join(cached.service(client, ns, &stable), cached.service(client, ns, &canary)).await?;
    let mut managed = Vec::new();
    let selectors = ServiceSelectors {
        stable: selected_revision(stable_found, (ns, &stable), &name, (&mut refused, &mut managed)),
        canary: selected_revision(canary_found, (ns, &canary), &name, (&mut refused, &mut managed)),
    };
    let observed = Observed {
        generation: rollout.metadata.generation,
        desired_revision: desired.template.as_ref().map(revision_hash),
        revisions: owned.iter().map(|(rev, d)| revision_state(rev, d)).collect(),
        // act.rs labels every revision's pods with the Rollout's name.
        pod_selector: Some(format!("{ROLLOUT_LABEL}={}", rollout.name_any())),
        services: selectors,
        route,
        verdict: None,
        analysis: None,
        request: ManualRequest::from_rollout(rollout),
        workload_ref_replicas: desired.workload_ref_replicas,
        hooks: Vec::new(),
        queue: None,
        not_adopted: refused,
    };
    Ok(World {
        observed,
        template: desired.template,
        deployments: owned,
        services: managed,
    })
}
