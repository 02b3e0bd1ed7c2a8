//! Siskin: progressive delivery for Kubernetes.
//!
//! Data flows one way: watch → observe → plan (pure) → act → status.
//! `api` holds the CRD types, `plan` the pure step engine, `analysis` the
//! metric providers and the pure judges, `routing` the traffic routers,
//! `controller` the thin Kubernetes shell around them, and `egress` every
//! outbound call whose destination a Rollout or template chooses.

pub mod analysis;
pub mod api;
pub mod cli;
pub mod controller;
pub mod egress;
pub mod plan;
pub mod routing;

#[cfg(test)]
mod structure_tests;
