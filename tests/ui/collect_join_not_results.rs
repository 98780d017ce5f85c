use flow::prelude::*;

#[flow::machine]
pub mod checks {
    use super::*;

    #[state(start, fan_out(check), join = report, collect)]
    async fn split(_cx: &mut (), hosts: Vec<String>) -> Result<Split> {
        fan_out!(check, hosts)
    }

    #[state(branch_end)]
    async fn check(_cx: &mut (), host: String) -> Result<usize> {
        Ok(host.len())
    }

    // With `collect`, a failed check reaches the join too: it takes results, not outputs.
    #[state(end)]
    async fn report(_cx: &mut (), lengths: Vec<usize>) -> Result<usize> {
        Ok(lengths.len())
    }
}

fn main() {}
