"""python -m tests.simulator --port 8900: serve the simulator until interrupted."""
import argparse
import signal
import sys

from tests.simulator.server import Simulator


def main() -> int:
    parser = argparse.ArgumentParser(description="futures_scan exchange simulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8900)
    parser.add_argument("--extra-markets", type=int, default=0, help="synthetic SIM001.. contracts on every exchange")
    parser.add_argument("--tick-seconds", type=float, default=1.0, help="how often values move")
    parser.add_argument("--no-rate-limits", action="store_true", help="never answer 429/418")
    parser.add_argument("--real-sizes", action="store_true",
                        help="as many perpetuals as each exchange lists (binance ~550 ... htx ~300)")
    parser.add_argument("--no-usdc", action="store_true",
                        help="no USDC/USDT:USDT perpetual on Binance (the scanner's USDC -> USDT rate)")
    args = parser.parse_args()
    sim = Simulator(args.host, args.port, extra_markets=args.extra_markets, tick_seconds=args.tick_seconds,
                    rate_limits=not args.no_rate_limits, real_sizes=args.real_sizes, usdc=not args.no_usdc)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"simulator serving {', '.join(f'{sim.url}/{ex}' for ex in sim.dialects)}", flush=True)
    try:
        sim.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
