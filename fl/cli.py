"""The `secagg` command line.

    secagg run [--config FILE.toml] [--set key=value ...] [--out DIR] [--force] [--engine flower-sim]   one federated experiment
    secagg compare --stacks plain,ddp+secagg+,robust [same options]      several stacks side by side
    secagg sweep --grid noise_multiplier=0.5,1 --grid byzantine=0,0.2 --seeds 2 [same options]   a grid, in parallel
    secagg report DIR [--round N]                                       re-render a saved run or sweep
    secagg layers                                                       every layer a --stack can name, with its fields
    secagg demo                                                         one secure-aggregation round
    secagg keys --out DIR --clients N                                   provision long-term client, key-holder, second-server and dealer signing keys (a PKI)

Exit status: 0 done, 1 a protocol error (or `run` whose every round aborted: it is saved), 2 a bad configuration or missing file, 130 interrupted (Ctrl-C:
the completed rounds are saved; an earlier result in --out is never replaced by an interrupted run).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from fl.config import config_from, fields_help, load_sweep_table
from fl.demo import PROTOCOLS, DemoConfig, run_demo
from fl.experiment import ENGINES, STACKS
from fl.results import render, to_dict
from fl.run_commands import DEFAULT_RUN, build_config, compare, compare_configs, compare_table, config_values, report, run
from fl.sweep import SPEC_FILE, SweepSpec, parse_grid, render_sweep, report_sweep, sweep
from protocols import ProtocolError, format_reports
from protocols.core.pki import provision
from protocols.core.stack import REGISTRY, REQUIRED
from protocols.layers.noise import MECHANISMS

INTERRUPTED = 130  # 128 + SIGINT, the shell's convention


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows every option's default (demo) and keeps the field table's lines (run, compare, flower-app)."""


_FIELDS = argparse.RawDescriptionHelpFormatter


def _experiment_options(cmd: argparse.ArgumentParser, *, out_help: str) -> None:
    cmd.add_argument("--config", help="a TOML file of experiment fields")
    cmd.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one field (repeatable)")
    cmd.add_argument("--stack", metavar="LAYERS", help="the stack: a preset name or layers, outermost first, e.g. "
                     "'clip(bound=1) > randk(fraction=0.25) > skellam(noise_multiplier=1) > two-server(rule=multi_krum, f=2, pre=nnm)' "
                     "(`secagg layers` lists them); the same as --set stack=...")
    cmd.add_argument("--out", type=Path, help=out_help)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="secagg", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    fields = fields_help(DEFAULT_RUN)
    for name, text in (("run", "one federated experiment (embedded default: about a minute)"), ("compare", "several stacks on the same data, seeds and adversaries")):
        cmd = sub.add_parser(name, help=text, description=text, epilog=fields, formatter_class=_FIELDS)
        _experiment_options(cmd, out_help="results folder (default results/<stack>-<data>-seed<seed>, numbered -2, -3, ... if taken)" if name == "run" else "results folder (default results/compare, numbered if taken)")
        cmd.add_argument("--force", action="store_true", help="replace an existing --out folder (once the new run completed)")
        cmd.add_argument("--engine", choices=ENGINES, help="in-process (default) or flower-sim: Flower's simulation engine (pip install -e '.[flower]')")
        if name == "compare":
            cmd.add_argument("--stacks", default="plain,secagg+,ddp+secagg+,robust",
                             help=f"comma-separated stacks from {', '.join(STACKS)} (rule and f go to the stacks that take a rule); "
                                  "separate with ';' to compare layer lists: 'clip(bound=1) > secagg+; robust(rule=krum)'")
    text = "a grid over experiment fields, several seeds a cell, in parallel and resumable (sweep.csv, sweep.json, plots)"
    swp = sub.add_parser("sweep", help=text, description=text + "; a [sweep] table in --config works too (field = [values], seeds = k)",
                         epilog=fields, formatter_class=_FIELDS)
    _experiment_options(swp, out_help="sweep folder (default results/sweep); the same command on it again resumes")
    swp.add_argument("--grid", action="append", default=[], metavar="FIELD=V1,V2", help="values of one field (repeatable; cells: the product)")
    swp.add_argument("--seeds", type=int, help="runs a cell, seeds seed, seed+1, ... (default 2, or the [sweep] table's)")
    swp.add_argument("--workers", type=int, help="worker processes (default: the CPU count)")
    app = sub.add_parser("flower-app", help="write a Flower App project that runs the experiment on Flower's deployment engine",
                         epilog=fields, formatter_class=_FIELDS)
    app.add_argument("folder", type=Path, help="where to write the app's pyproject.toml (for `flwr run FOLDER`)")
    _experiment_options(app, out_help="results folder the ServerApp writes")
    app.add_argument("--keys", type=Path, help="the folder `secagg keys` wrote: the server reads its clients/ and each node's command "
                     "names its signing key (needed by the stacks whose clients sign: ckks, two-server, active=true) and, for ckks, the key holder's; "
                     "every node line pins stack, active and noise_multiplier, and for a two-server stack what decides the servers' "
                     "program and min_clients (f, written into the run config too, and the fields the preset reads: clip, rule; "
                     "ddp+two-server also bits and mechanism); a two-server S1 or client node that does not pin them refuses")
    app.set_defaults(out=Path("results/flower-deployment"))
    sub.add_parser("layers", help="every layer a stack can name: its fields, defaults and what it does")
    keys = sub.add_parser("keys", help="provision long-term Ed25519 client identities: DIR/keys/<id>.pem (private, one a client node) "
                          "and DIR/clients/<id>.pub (the public-key folder every verifier reads), and the HE key holder's "
                          "DIR/keys/key-holder.pem (its node alone) and DIR/key-holder.pub (every ckks client node)")
    keys.add_argument("--out", type=Path, required=True, help="a new folder (existing keys are never overwritten)")
    keys.add_argument("--clients", type=int, required=True, help="number of clients (ids 0 .. N-1, the partition ids)")
    rep = sub.add_parser("report", help="re-render the report and plots of a saved run")
    rep.add_argument("folder", type=Path, help="a results folder with result.json")
    rep.add_argument("--round", type=int, help="draw cost.png for this round (default: the mean of the completed rounds)")
    demo = sub.add_parser("demo", help="one secure-aggregation round with dropouts; prints the per-layer report", formatter_class=_Formatter)
    defaults = DemoConfig()
    demo.add_argument("--clients", type=int, default=defaults.clients, help="number of clients n")
    demo.add_argument("--dim", type=int, default=defaults.dim, help="update dimension d")
    demo.add_argument("--dropout", type=float, default=defaults.dropout, help="fraction of clients that drop, each at a random stage")
    demo.add_argument("--protocol", choices=PROTOCOLS, default=defaults.protocol, help="protection protocol")
    demo.add_argument("--bits", type=int, default=defaults.bits, help="ring Z_2^bits")
    demo.add_argument("--active", action="store_true", help="signatures and consistency check against an active server")
    demo.add_argument("--noise-multiplier", type=float, default=defaults.noise_multiplier,
                      help="> 0: clip, rotate, discretize and add distributed DP noise before protection")
    demo.add_argument("--mechanism", choices=MECHANISMS, default=defaults.mechanism, help="distributed noise: skellam or ddg")
    demo.add_argument("--seed", type=int, default=defaults.seed, help="simulation seed (secrets are seeded too: a demo, not for real data)")
    return parser


def _overrides(args) -> list[str]:
    """--set pairs, then --stack (it wins, as a later --set would)."""
    return [*args.set, *([f"stack={args.stack}"] if getattr(args, "stack", None) else [])]


def _engine(args) -> dict:
    return {"engine": args.engine} if args.engine else {}


def layers_help() -> str:
    """One paragraph a registered layer: name (protection or layer), its fields with defaults, what it does."""
    lines = []
    for name, entry in sorted(REGISTRY.items()):
        fields = ", ".join(f"{k}={'(required)' if f.default is REQUIRED else 'derived' if f.default is None else f.default}"
                           + (f" {{{'|'.join(map(str, f.choices))}}}" if f.choices else f" ({f.expect})" if f.expect else "")
                           for k, f in entry.fields.items())
        lines.append(f"{name}{' [protection, innermost]' if entry.leaf else ''}: {entry.about}\n    fields: {fields or 'none'}")
    return "\n".join(lines)


def _flower_app(args) -> None:
    values = config_values(args.config, _overrides(args), {"engine": "flower-deployment"})
    config = config_from(values)  # validated here, before any Flower process starts
    from fl.flower_engine import node_pins, supernodes, write_app  # flwr is the optional extra '.[flower]'
    from fl.remote_two_server import ROLES, two_server_nodes

    pinned = node_pins(config)
    values = {**values, **({"f": pinned["f"]} if "f" in pinned else {})}  # the f every node pins, stated in the run config too

    keys = args.keys.resolve() if args.keys else None
    folder = write_app(args.folder, values, args.out.resolve(), keys / "clients" if keys else None)
    print(f"wrote {folder / 'pyproject.toml'} ({config.clients} clients, stack {config.stack}); then, see README:")
    print("  flower-superlink --insecure")  # its Runtime, Fleet and Control APIs on 127.0.0.1:8000
    signing = "key holder" in config.traits.observers or config.active  # the stacks whose clients sign
    if (signing or two_server_nodes(config)) and keys is None:
        print(f"  # stack {config.stack}{' (active)' if config.active else ''}: its clients, key holder, second server or dealer sign; "
              f"provision keys first: secagg keys --out KEYS --clients {config.clients}, then pass --keys KEYS here")
    pins = "".join(f" {key}={json.dumps(value)}" for key, value in pinned.items())
    for c in range(supernodes(config)):  # every node pins the stack it was provisioned for: a run config that differs is refused
        role = ROLES[c - config.clients] if two_server_nodes(config) and c >= config.clients else ""
        named = f' role="{role}"' if role else ""
        comment = f"   # the {role.replace('-', ' ')}" if role else "   # the key holder" if c == config.clients else ""
        pki = ""
        if keys is not None and role:  # S1 and the dealer: each its own identity and the other's public key
            own, peer = ("second-server", "dealer") if role == "second-server" else ("dealer", "second-server")
            pki = f" {own}-signing-key=\"{keys / 'keys' / f'{own}.pem'}\" {peer}-key=\"{keys / f'{peer}.pub'}\""
            pki += f" client-keys=\"{keys / 'clients'}\"" if role == "second-server" else ""  # S1 opens only shares their clients signed
        elif keys is not None and signing and c == config.clients:
            pki = f" he-client-keys=\"{keys / 'clients'}\" he-signing-key=\"{keys / 'keys' / 'key-holder.pem'}\""
        elif keys is not None and (signing or two_server_nodes(config)):
            pki = f" signing-key=\"{keys / 'keys' / f'{c}.pem'}\" client-keys=\"{keys / 'clients'}\""
            pki += f" he-key-holder-key=\"{keys / 'key-holder.pub'}\"" if "key holder" in config.traits.observers else ""
            if two_server_nodes(config):  # a client seals S1's share only to a round key S1 signed
                pki += f" second-server-key=\"{keys / 'second-server.pub'}\""
        print(f"  flower-supernode --insecure --superlink 127.0.0.1:8000 --port {9094 + c} --node-config 'partition-id={c} num-partitions={config.clients}{pki}{pins}{named}'{comment}")
    print(f"  flwr run {folder} local --stream      # a SuperLink connection 'local' at 127.0.0.1:8000, insecure (see README)")


def _experiments(args, command: list[str]) -> int:
    """Runs run, compare, report or flower-app; returns the exit status."""
    if args.command == "layers":
        print(layers_help())
        return 0
    if args.command == "flower-app":
        _flower_app(args)
        return 0
    if args.command == "keys":
        directory = provision(args.out, args.clients)
        print(f"wrote {args.clients} client identities: private keys in {args.out / 'keys'} (mode 0600; key <id>.pem to client <id>'s node "
              f"only, as its node config signing-key), public keys in {directory.source} (client-keys of every client node and of the two-server stack's second server, he-client-keys "
              f"of the key holder, flower-app --keys for the server); the HE key holder's identity: {args.out / 'keys' / 'key-holder.pem'} "
              f"(its node's he-signing-key only) and {args.out / 'key-holder.pub'} (he-key-holder-key of every ckks client node); the two-server "
              f"stack's second server and dealer: keys/second-server.pem and keys/dealer.pem (their own node's second-server-signing-key, "
              f"dealer-signing-key), second-server.pub (second-server-key of the dealer and of every two-server client node) and dealer.pub (the second server's dealer-key)")
        return 0
    if args.command == "report":
        print(report_sweep(args.folder) if (args.folder / SPEC_FILE).exists() else report(args.folder, args.round))
        return 0
    if args.command == "sweep":
        table = load_sweep_table(args.config)
        seeds = args.seeds if args.seeds is not None else table.pop("seeds", 2)
        table.pop("seeds", None)
        spec = SweepSpec(base=config_values(args.config, _overrides(args)), grid={**table, **parse_grid(args.grid)}, seeds=seeds)
        data, interrupted = sweep(spec, args.out or Path("results/sweep"), workers=args.workers, command=command)
        print(render_sweep(data))
        print(f"results: {args.out or Path('results/sweep')} (sweep.csv, sweep.json, trilemma.png, one folder a run in runs/)")
        return INTERRUPTED if interrupted else 0
    if args.command == "run":
        result, folder = run(build_config(args.config, _overrides(args), _engine(args)), args.out, force=args.force, command=command)
        print(render(to_dict(result)))
        print(f"results: {folder}")
        if result.interrupted:
            return INTERRUPTED
        return _no_round_completed([result])
    stacks = [s.strip() for s in args.stacks.split(";" if ";" in args.stacks else ",") if s.strip()]
    configs = compare_configs(config_values(args.config, _overrides(args), _engine(args)), stacks)  # every stack checked before any runs
    results, folder = compare(configs, args.out, force=args.force, command=command)
    print(compare_table(results))
    print(f"results: {folder} (compare.md, compare.png, one folder a stack)")
    _no_round_completed(results)  # a stack that aborts every round is a finding of the comparison, not an error: named, exit 0
    return INTERRUPTED if any(r.interrupted for r in results) else 0


def _no_round_completed(results) -> int:
    """Names each run that completed no round (every one aborted; saved all the same); 1 (a protocol error) if any, else 0."""
    failed = [r for r in results if r.rounds and all(record.aborted for record in r.rounds)]
    for r in failed:
        print(f"secagg: every round of {r.config.stack} aborted ({len(r.rounds)}), the model never "
              f"changed; the first: {r.rounds[0].aborted}", file=sys.stderr)
    return 1 if failed else 0


def _demo(args) -> None:
    config = DemoConfig(
        clients=args.clients, dim=args.dim, dropout=args.dropout, protocol=args.protocol, bits=args.bits, active=args.active,
        seed=args.seed, noise_multiplier=args.noise_multiplier, mechanism=args.mechanism,
    )
    print(f"secure aggregation: n={config.clients} clients, d={config.dim}, dropout={config.dropout:.0%}, protocol={config.protocol}")
    result = run_demo(config)
    print(format_reports(result.secure.reports + result.baseline.reports))
    if config.noise_multiplier > 0:
        accuracy = f"decoded sum RMS error {result.error:.3g} (target noise stddev {result.expected:.3g})"
    else:
        accuracy = f"decoded sum max error {result.error:.3g} (fixed-point bound {result.expected:.3g})"
    print(f"\nincluded clients: {len(result.secure.included)} of {config.clients}; {accuracy}; {len(result.secure.rejected)} messages rejected")


def main(argv: list[str] | None = None) -> int:
    """Runs one command; exit code 2 for a bad configuration or missing file, 1 for a protocol error, 130 interrupted."""
    args = _parser().parse_args(argv)
    command = sys.argv if argv is None else ["secagg", *argv]
    try:
        if args.command == "demo":
            _demo(args)
            return 0
        return _experiments(args, command)
    except (ValueError, OverflowError, FileNotFoundError) as exc:
        print(f"secagg: error: {exc}", file=sys.stderr)
        return 2
    except ProtocolError as exc:
        print(f"secagg: a round aborted (no aggregate was released; what the parties saw before the abort is in the round's guarantee): {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nsecagg: interrupted outside the rounds; nothing was written and an earlier result is as it was", file=sys.stderr)
        return INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
