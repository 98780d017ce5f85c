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

    // `pay` jumps into the other branch.
    #[state(to(confirm))]
    async fn pay(_cx: &mut Shop, cents: u64) -> Result<Pay> {
        goto!(confirm(cents as u32))
    }

    #[state(to(confirm))]
    async fn reserve(_cx: &mut Shop, items: u32) -> Result<Reserve> {
        goto!(confirm(items))
    }

    #[state(branch_end)]
    async fn confirm(_cx: &mut Shop, items: u32) -> Result<Reservation> {
        Ok(Reservation { items })
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, receipt: Receipt, reservation: Reservation) -> Result<String> {
        Ok(format!("{} {}", reservation.items, receipt.cents))
    }
}

fn main() {}
