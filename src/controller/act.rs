//! Act: apply the engine's actions. Siskin's own objects (Deployments and
//! Services) are written with server-side apply under one field manager; the
//! user's route only through its router's guarded JSON Patch.

use std::collections::BTreeMap;

use json_patch::jsonptr::PointerBuf;
use json_patch::{PatchOperation, ReplaceOperation, TestOperation};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PodTemplateSpec, Service};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

use super::{Error, FIELD_MANAGER, Metrics};
use crate::api::{REVISION_LABEL, ROLLOUT_LABEL, Rollout};
use crate::plan::Action;
use crate::routing::TrafficRouter;

/// What acting on one Rollout needs besides the action itself.
pub struct Target<'a> {
    pub client: &'a Client,
    pub ns: &'a str,
    pub rollout: &'a Rollout,
    pub template: Option<&'a PodTemplateSpec>,
    /// Existing Deployments by revision.
    pub deployments: &'a [(String, Deployment)],
    /// The Services Siskin manages, as found.
    pub services: &'a [Service],
    pub router: Option<&'a dyn TrafficRouter>,
    /// Counts each API write as it is attempted.
    pub metrics: &'a Metrics,
}

/// The name of the Deployment running one revision.
pub fn deployment_name(rollout: &str, revision: &str) -> String {
    format!("{rollout}-{revision}")
}

fn revision_labels(rollout: &str, revision: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (ROLLOUT_LABEL.to_string(), rollout.to_string()),
        (REVISION_LABEL.to_string(), revision.to_string()),
    ])
}

fn apply_params() -> PatchParams {
    // Controllers force their own fields (Kubernetes' guidance for SSA).
    PatchParams::apply(FIELD_MANAGER).force()
}

fn merge_params() -> PatchParams {
    PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    }
}

impl Target<'_> {
    fn wrote(&self, kind: &'static str) {
        self.metrics.wrote(kind);
    }

    pub async fn apply(&self, action: &Action) -> Result<(), Error> {
        match action {
            Action::Deploy { revision, replicas } => self.deploy(revision, *replicas).await,
            Action::Scale { revision, replicas } => self.scale(revision, *replicas).await,
            Action::SelectRevisions { stable, canary } => {
                // Two independent objects: applied together, one round-trip.
                let (stable_name, canary_name) = (
                    self.rollout.spec.service.stable_name(),
                    self.rollout.spec.service.canary_name(),
                );
                futures::future::try_join(self.select(&stable_name, stable), self.select(&canary_name, canary))
                    .await
                    .map(|_| ())
            }
            Action::SelectStable { revision } => self.select(&self.rollout.spec.service.stable_name(), revision).await,
            Action::SetWeights(_) | Action::SetMirror(_) | Action::SetMatches(_) => match self.router {
                Some(router) => {
                    self.wrote("route_patch");
                    Ok(route_write(router, action).await?)
                }
                None => Ok(()),
            },
            Action::ScaleDownWorkloadRef => self.scale_down_workload_ref().await,
        }
    }

    async fn deploy(&self, revision: &str, replicas: i32) -> Result<(), Error> {
        let name = self.rollout.name_any();
        let mut template = self.template.cloned().ok_or_else(|| Error::Template {
            what: format!("Rollout {}/{name}", self.ns),
            message: "no pod template to deploy".into(),
        })?;
        let labels = revision_labels(&name, revision);
        let meta = template.metadata.get_or_insert_with(Default::default);
        meta.labels.get_or_insert_with(Default::default).extend(labels.clone());
        let owner = self.rollout.controller_owner_ref(&());
        let deployment = json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": deployment_name(&name, revision),
                "namespace": self.ns,
                "labels": labels,
                "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
            },
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": labels},
                "template": template,
            }
        });
        // Unconditional, unlike a scale: the apply may create the object,
        // and the resourceVersion of an existing one moves with every status
        // update, so requiring it would refuse most applies. The write fence
        // keeps a replica that lost the Lease from applying a stale one.
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), self.ns);
        self.wrote("deployment_apply");
        api.patch(
            &deployment_name(&name, revision),
            &apply_params(),
            &Patch::Apply(deployment),
        )
        .await?;
        Ok(())
    }

    async fn scale(&self, revision: &str, replicas: i32) -> Result<(), Error> {
        let observed = self.deployments.iter().find(|(rev, _)| rev == revision).map(|(_, d)| d);
        let name = observed
            .map(|d| d.name_any())
            .unwrap_or_else(|| deployment_name(&self.rollout.name_any(), revision));
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), self.ns);
        // A patch, not an apply: an apply of `replicas` alone would drop the
        // template this manager applied. It holds only if the replica count
        // is still the one the plan saw, so a plan made from an older view
        // (a replica that lost the Lease meanwhile) cannot undo a newer
        // scale. The test is on our own field, not on the resourceVersion,
        // which the Deployment's status moves on every pod change.
        self.wrote("deployment_scale");
        let result = match observed.and_then(|d| d.spec.as_ref()?.replicas) {
            Some(was) => {
                let path = || PointerBuf::from_tokens(["spec", "replicas"]);
                let patch = json_patch::Patch(vec![
                    PatchOperation::Test(TestOperation {
                        path: path(),
                        value: was.into(),
                    }),
                    PatchOperation::Replace(ReplaceOperation {
                        path: path(),
                        value: replicas.into(),
                    }),
                ]);
                api.patch(&name, &merge_params(), &Patch::Json::<()>(patch)).await
            }
            None => {
                let patch = json!({"spec": {"replicas": replicas}});
                api.patch(&name, &merge_params(), &Patch::Merge(patch)).await
            }
        };
        // Scaling down a revision that is already gone is done.
        if replicas == 0 {
            ignore_missing(result)
        } else {
            result.map(|_| ()).map_err(Error::from)
        }
    }

    async fn select(&self, service: &str, revision: &str) -> Result<(), Error> {
        let name = self.rollout.name_any();
        let spec = &self.rollout.spec.service;
        let target_port = spec.target_port.clone().unwrap_or(IntOrString::Int(spec.port));
        let owner = self.rollout.controller_owner_ref(&());
        let svc = json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": service,
                "namespace": self.ns,
                "labels": {ROLLOUT_LABEL: name},
                "ownerReferences": owner.into_iter().collect::<Vec<_>>(),
            },
            "spec": {
                "selector": revision_labels(&name, revision),
                // A named port: Traefik matches EndpointSlice ports by name.
                "ports": [{"name": "http", "port": spec.port, "targetPort": target_port, "protocol": "TCP"}],
            }
        });
        // A Service already as wanted costs no write: a promotion re-points
        // one of the two. Otherwise unconditional: the apply may create the
        // Service, and the write fence keeps a replica that lost the Lease
        // from switching the selector.
        if self.services.iter().any(|found| already_as(found, &svc)) {
            return Ok(());
        }
        let api: Api<Service> = Api::namespaced(self.client.clone(), self.ns);
        self.wrote("service_apply");
        api.patch(service, &apply_params(), &Patch::Apply(svc)).await?;
        Ok(())
    }

    /// A deleted Rollout leaves its stable revision serving: both Services
    /// select it and lose their owner reference, and so does its
    /// Deployment, so garbage collection takes only the rest and the user's
    /// route keeps pointing at live pods. Only existing objects are patched:
    /// a namespace being deleted accepts no new ones.
    pub async fn hand_over(&self, stable: &str) -> Result<(), Error> {
        let rollout = self.rollout.name_any();
        let spec = &self.rollout.spec.service;
        let services: Api<Service> = Api::namespaced(self.client.clone(), self.ns);
        let select_stable = Patch::Merge(json!({
            "metadata": {"ownerReferences": null},
            "spec": {"selector": revision_labels(&rollout, stable)},
        }));
        for name in [spec.stable_name(), spec.canary_name()] {
            ignore_missing(services.patch(&name, &merge_params(), &select_stable).await)?;
        }
        let deployments: Api<Deployment> = Api::namespaced(self.client.clone(), self.ns);
        let orphan = Patch::Merge(json!({"metadata": {"ownerReferences": null}}));
        let name = deployment_name(&rollout, stable);
        ignore_missing(deployments.patch(&name, &merge_params(), &orphan).await)
    }

    async fn scale_down_workload_ref(&self) -> Result<(), Error> {
        let Some(reference) = &self.rollout.spec.workload_ref else {
            return Ok(());
        };
        let api: Api<Deployment> = Api::namespaced(self.client.clone(), self.ns);
        let patch = json!({"spec": {"replicas": 0}});
        self.wrote("deployment_scale");
        api.patch(&reference.name, &merge_params(), &Patch::Merge(patch))
            .await?;
        Ok(())
    }
}

/// The one route write a route action makes.
async fn route_write(router: &dyn TrafficRouter, action: &Action) -> Result<(), crate::routing::RoutingError> {
    match action {
        Action::SetWeights(split) => router.set_weights(*split).await,
        Action::SetMirror(percent) => router.set_mirror(*percent).await,
        Action::SetMatches(matches) => router.set_matches(matches.as_deref()).await,
        _ => Ok(()),
    }
}

/// Whether the Service `found` already has everything the apply `wanted`
/// sets: its name, selector, ports, label and owner.
fn already_as(found: &Service, wanted: &serde_json::Value) -> bool {
    let Ok(found) = serde_json::to_value(found) else {
        return false;
    };
    let same = |path: &str| found.pointer(path).is_some() && found.pointer(path) == wanted.pointer(path);
    let label = format!(
        "/metadata/labels/{}",
        ROLLOUT_LABEL.replace('~', "~0").replace('/', "~1")
    );
    let owned = match (
        found.pointer("/metadata/ownerReferences"),
        wanted.pointer("/metadata/ownerReferences"),
    ) {
        (Some(found), Some(serde_json::Value::Array(wanted))) => wanted.iter().all(|w| {
            found
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f.get("uid") == w.get("uid")))
        }),
        (None, Some(serde_json::Value::Array(wanted))) => wanted.is_empty(),
        _ => false,
    };
    same("/metadata/name") && same("/spec/selector") && same("/spec/ports") && same(&label) && owned
}

/// A write to an object that is already gone has nothing left to do.
fn ignore_missing<T>(result: Result<T, kube::Error>) -> Result<(), Error> {
    match result {
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        other => other.map(|_| ()).map_err(Error::from),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn wanted(revision: &str) -> serde_json::Value {
        json!({
            "metadata": {
                "name": "shop-canary",
                "labels": {ROLLOUT_LABEL: "shop"},
                "ownerReferences": [{"apiVersion": "siskin.io/v1alpha1", "kind": "Rollout", "name": "shop", "uid": "u-1"}],
            },
            "spec": {
                "selector": revision_labels("shop", revision),
                "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}],
            }
        })
    }

    /// A Service as the API server returns it: defaulted fields added.
    fn found(revision: &str) -> Service {
        let mut service = wanted(revision);
        service["spec"]["clusterIP"] = json!("10.96.0.12");
        service["spec"]["type"] = json!("ClusterIP");
        service["metadata"]["resourceVersion"] = json!("42");
        serde_json::from_value(service).expect("a Service")
    }

    #[test]
    fn a_service_already_selecting_the_revision_costs_no_write() {
        assert!(already_as(&found("r1"), &wanted("r1")));
    }

    #[test]
    fn a_service_is_applied_when_its_selector_ports_or_owner_differ() {
        assert!(!already_as(&found("r0"), &wanted("r1")), "another revision");
        let mut port = wanted("r1");
        port["spec"]["ports"][0]["port"] = json!(81);
        assert!(!already_as(&found("r1"), &port), "another port");
        let mut orphan = found("r1");
        orphan.metadata.owner_references = None;
        assert!(!already_as(&orphan, &wanted("r1")), "handed over by a deleted Rollout");
    }
}
