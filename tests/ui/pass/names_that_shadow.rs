// Payload fields named like the fns they are passed to: a state `order` taking `order`, a
// compensation `refund` for a state whose payload has a field `refund`.
use flow::prelude::*;

pub struct Shop;

#[flow::machine]
pub mod shop {
    use super::*;

    #[state(start, to(pay))]
    async fn order(_cx: &mut Shop, order: u32) -> Result<Order> {
        goto!(pay(order, true))
    }

    #[state(to(ship), compensate = refund)]
    async fn pay(_cx: &mut Shop, order: u32, refund: bool) -> Result<Pay> {
        let _ = refund;
        goto!(ship(order))
    }

    async fn refund(_cx: &mut Shop, order: u32, refund: bool) -> Result<()> {
        let _ = (order, refund);
        Ok(())
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, ship: u32) -> Result<u32> {
        Ok(ship)
    }
}

fn main() {
    let mut cx = Shop;
    let _run = shop::run(7, &mut cx);
}
