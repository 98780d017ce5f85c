use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    pub cents: u64,
}

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    pub items: u32,
}

#[derive(Debug, Clone, Default)]
pub struct Shop;

#[flow::machine]
pub mod order {
    use super::*;

    #[state(start, fork(pay, reserve), join = ship)]
    async fn split(_cx: &mut Shop, cents: u64) -> Result<Split> {
        fork!(pay(cents), reserve(2))
    }

    #[state(branch_end)]
    async fn pay(_cx: &mut Shop, cents: u64) -> Result<Receipt> {
        Ok(Receipt { cents })
    }

    // `reserve` goes on to `count`, which never ends the branch.
    #[state(to(count))]
    async fn reserve(_cx: &mut Shop, items: u32) -> Result<Reserve> {
        goto!(count(items))
    }

    #[state(to(count))]
    async fn count(_cx: &mut Shop, items: u32) -> Result<Count> {
        goto!(count(items))
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, receipt: Receipt, reservation: Reservation) -> Result<String> {
        Ok(format!("{} {}", reservation.items, receipt.cents))
    }
}

fn main() {}
