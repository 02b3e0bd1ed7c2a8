//! Metric providers, query templating and the judges that turn metrics into verdicts.

pub mod eprocess;
pub mod judge;
pub mod observation;
pub mod provider;
pub mod query;
pub mod simulation;
mod verdict;
pub mod wilcoxon;

pub use verdict::Verdict;
