//! Runs the newcomer examples of the repository's top-level `examples/` (README, "Examples")
//! as tests, so `cargo test --workspace` keeps them compiling and working. Each example is
//! included as a module and its `main` must return `Ok`; they are small enough to take a few
//! seconds together.

#[path = "../../../examples/rings_flow.rs"]
mod rings_flow;

#[path = "../../../examples/dataset_distance.rs"]
mod dataset_distance;

#[path = "../../../examples/custom_objective.rs"]
mod custom_objective;

#[test]
fn rings_flow_runs() {
    rings_flow::main().expect("examples/rings_flow.rs");
}

#[test]
fn dataset_distance_runs() {
    dataset_distance::main().expect("examples/dataset_distance.rs");
}

#[test]
fn custom_objective_runs() {
    custom_objective::main().expect("examples/custom_objective.rs");
}
