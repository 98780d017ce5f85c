use flow::prelude::*;

#[derive(Debug, Clone, Default)]
pub struct Desk;

#[flow::machine]
pub mod race {
    use super::*;

    // The join would fire before any mirror answered.
    #[state(start, fan_out(ask, first = 0), join = fastest)]
    async fn split(_cx: &mut Desk, mirrors: u64) -> Result<Split> {
        fan_out!(ask, 0..mirrors)
    }

    #[state(branch_end)]
    async fn ask(_cx: &mut Desk, n: u64) -> Result<u64> {
        Ok(n)
    }

    #[state(end)]
    async fn fastest(_cx: &mut Desk, answers: Vec<u64>) -> Result<Vec<u64>> {
        Ok(answers)
    }
}

fn main() {}
