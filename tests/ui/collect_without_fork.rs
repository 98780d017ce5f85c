use flow::prelude::*;

#[flow::machine]
pub mod checks {
    use super::*;

    #[state(start, end, collect)]
    async fn check(_cx: &mut (), host: String) -> Result<usize> {
        Ok(host.len())
    }
}

fn main() {}
