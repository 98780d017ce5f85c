use flow::prelude::*;

#[derive(Debug, Clone, Default)]
pub struct Desk;

#[flow::machine]
pub mod digest {
    use super::*;

    #[state(start, fan_out(summarise, limit = 3), join = merge)]
    async fn split(_cx: &mut Desk, text: String) -> Result<Split> {
        fan_out!(summarise, text.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    }

    #[state(branch_end)]
    async fn summarise(_cx: &mut Desk, word: String) -> Result<usize> {
        Ok(word.len())
    }

    // Every item's output comes to the join: it takes a `Vec<usize>`, not one `usize`.
    #[state(end)]
    async fn merge(_cx: &mut Desk, length: usize) -> Result<usize> {
        Ok(length)
    }
}

fn main() {}
