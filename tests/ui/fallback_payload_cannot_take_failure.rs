use flow::prelude::*;

pub struct Shop;

#[flow::machine]
pub mod checkout {
    use super::*;

    #[state(start, to(ship), retry(attempts = 3), fallback = review)]
    async fn charge(_cx: &mut Shop, order: u32) -> Result<Charge> {
        goto!(ship(order))
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, order: u32) -> Result<String> {
        Ok(format!("shipped {order}"))
    }

    // A fallback receives the failure (`flow::Caught`), not a note.
    #[state(end)]
    async fn review(_cx: &mut Shop, note: String) -> Result<String> {
        Ok(note)
    }
}

fn main() {}
