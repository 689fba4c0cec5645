"""The `camlang` command: check, fmt, run, compile, repl, lsp.

Exit codes: 0 success, 1 user error (diagnostics printed), 2 internal error ("please report"),
130 interrupted. A Python traceback is shown only for internal errors with CAMLANG_DEBUG=1.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

from camlang.core.atomic import DISK_FULL, write_failure
from camlang.core.version import __version__
from camlang.errors import CamlangError
from camlang.frontend.diagnostics import CompileError, Diagnostic, render, render_all

EXIT_OK, EXIT_USER, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 130


def _color() -> bool:
    return sys.stderr.isatty() and os.environ.get("NO_COLOR") is None


def _print_diagnostics(diagnostics: list[Diagnostic]) -> None:
    if diagnostics:
        print(render_all(diagnostics, color=_color()), file=sys.stderr)


def cmd_check(args: argparse.Namespace) -> int:
    """Parse and check files; load no model or data."""
    from camlang.frontend.check import check_file

    status = EXIT_OK
    for name in args.files:
        program = check_file(name)
        _print_diagnostics(program.diagnostics)
        if program.has_errors:
            status = EXIT_USER
            continue
        summary = program.summary()
        plural = {"data": "data", "property": "properties", "synthesize": "syntheses", "concepts": "concepts"}
        parts = [f"{len(v)} {k if len(v) == 1 else plural.get(k, k + 's')}" for k, v in summary.items()]
        print(f"{name}: ok ({', '.join(parts) or 'no declarations'}; {len(program.actions)} actions)")
        if args.verbose:
            for kind, names in summary.items():
                print(f"  {kind}: {', '.join(names)}")
    return status


def cmd_fmt(args: argparse.Namespace) -> int:
    """Rewrite files in canonical form (or, with --check, report which would change)."""
    from camlang.frontend.parser import parse
    from camlang.frontend.pretty import format_source

    status = EXIT_OK
    for name in args.files:
        path = Path(name)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise CamlangError(f"cannot read {name}: {err.strerror}", hint="check the path") from None
        module = parse(text, name, path)
        formatted = format_source(text, module)
        if formatted == text:
            continue
        if args.check:
            print(f"{name}: would reformat")
            status = EXIT_USER
        else:
            path.write_text(formatted, encoding="utf-8")
            print(f"{name}: reformatted")
    return status


def cmd_run(args: argparse.Namespace) -> int:
    """Execute a file's actions and write the report."""
    if args.workers is not None and args.workers > 1:
        return _launch(args)
    from camlang.run.program import run_file

    return run_file(
        args.file,
        out_dir=args.out,
        device=args.device,
        batch_size=args.batch_size,
        seed=args.seed,
        resume=args.resume,
        threads=args.threads,
        collective_timeout=args.collective_timeout,
    )


def _launch(args: argparse.Namespace) -> int:
    """`--workers N`: the same command on N local workers, through torch's elastic launcher."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise CamlangError(
            "--workers cannot be used inside torchrun (the launcher already started the workers)",
            hint="drop --workers, or run without torchrun",
        )
    from camlang.distributed.launch import launch_workers
    from camlang.frontend.check import check_file

    program = check_file(args.file)  # report errors once, here, instead of once per worker
    if program.has_errors:
        raise CompileError(program.diagnostics)
    out = Path(args.out) if args.out is not None else Path("camlang-out") / Path(args.file).stem
    worker = [
        args.file,
        "--out",
        str(out),
        "--device",
        args.device,
        "--batch-size",
        str(args.batch_size),
        "--seed",
        str(args.seed),
        "--collective-timeout",
        str(args.collective_timeout),
    ]
    if args.resume:
        worker.append("--resume")
    if args.threads:
        worker += ["--threads", str(args.threads)]
    from camlang.run.program import LOCKED_ENV, lock_output

    lock = lock_output(out)  # held here for the whole run; the workers know it from LOCKED_ENV
    os.environ[LOCKED_ENV] = str(out.resolve())
    try:
        return launch_workers(args.workers, worker, out)
    finally:
        os.environ.pop(LOCKED_ENV, None)
        if lock is not None:
            lock.release()


def cmd_compile(args: argparse.Namespace) -> int:
    """Write a CAM as a standalone nn.Module source file."""
    from camlang.run.export import export_cam_from_file

    path = export_cam_from_file(args.file, args.cam, args.output)
    print(f"wrote {path}")
    return EXIT_OK


def cmd_repl(args: argparse.Namespace) -> int:
    """Start the interactive REPL."""
    from camlang.repl.app import run_repl

    return run_repl(args.file)


def cmd_lsp(args: argparse.Namespace) -> int:
    """Start the language server on stdio (needs the `camlang[lsp]` extra)."""
    try:
        from camlang.lsp.server import serve
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in ("pygls", "lsprotocol"):
            raise
        raise CamlangError("`camlang lsp` needs pygls", hint='pip install "camlang[lsp]"') from None
    return serve()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="camlang", description="CAMs you can state, check and synthesize.")
    parser.add_argument("--version", action="version", version=f"camlang {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("check", help="parse and check .cam files (loads no model or data)")
    p.add_argument("files", nargs="+")
    p.add_argument("-v", "--verbose", action="store_true", help="list every declaration")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("fmt", help="format .cam files canonically")
    p.add_argument("files", nargs="+")
    p.add_argument("--check", action="store_true", help="only report files that would change")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser("run", help="run a .cam file and write its report")
    p.add_argument("file")
    p.add_argument("--out", default=None, help="output folder (default camlang-out/<stem>/)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run from its cache")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="run on N local processes (torch's elastic launcher, as torchrun does)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        metavar="T",
        help="intra-op threads per worker (default: cores / workers on this machine)",
    )
    p.add_argument(
        "--collective-timeout",
        type=float,
        default=1800.0,
        metavar="S",
        help="seconds a worker waits for the others before the run fails (default 1800)",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("compile", help="export a cam as a standalone nn.Module source file")
    p.add_argument("file")
    p.add_argument("--cam", required=True)
    p.add_argument("-o", "--output", required=True)
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser("repl", help="interactive session")
    p.add_argument("file", nargs="?")
    p.set_defaults(func=cmd_repl)

    p = sub.add_parser("lsp", help="language server for editors, on stdio (needs camlang[lsp])")
    p.set_defaults(func=cmd_lsp)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `camlang` console script."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except CompileError as err:
        _print_diagnostics(err.diagnostics)
        return EXIT_USER
    except CamlangError as err:
        from camlang.frontend.source import NO_SPAN, Span

        span = err.span if isinstance(err.span, Span) else NO_SPAN
        diag = Diagnostic(err.code, err.message, span, hint=err.hint)
        print(render(diag, color=_color()), file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:  # noqa: BLE001 - the one place that turns bugs into a clean message
        if isinstance(err, OSError) and err.errno in DISK_FULL:  # a write no caller wrapped
            message, hint = write_failure(err.filename or "a file", err)
            print(f"error: {message} (hint: {hint})", file=sys.stderr)
            return EXIT_USER
        print(f"internal error, please report: {type(err).__name__}: {err}", file=sys.stderr)
        if os.environ.get("CAMLANG_DEBUG"):
            traceback.print_exc()
        else:
            print("(set CAMLANG_DEBUG=1 to see the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
