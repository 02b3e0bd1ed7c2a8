//! Metric providers, query templating and the judges that turn metrics into verdicts.

pub mod eprocess;
pub mod judge;
pub mod observation;
pub mod power;
pub mod provider;
pub mod query;
pub mod simulation;
pub mod status;
mod verdict;
pub mod wilcoxon;

pub use verdict::Verdict;
