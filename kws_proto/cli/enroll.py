"""Enrol a keyword from a few clips into a keyword bank (created when missing), or remove one.

The encoder is the first argument (a run directory, or `default` for the shipped model), --model,
or, for an existing bank, the bank's own; the remaining arguments are clips or folders of them.
The clips are embedded through the run's own front end, each at its crop and one detection hop
either side (the offsets a sliding window sees: kws_proto/spot/enrolment.py); the bank stores the
keyword's prototype, support embeddings, clip names and a rejection threshold calibrated from the
clips (and --negatives): a margin times the mean leave-one-out distance of the clips, capped by a
low quantile of the negatives' distances (kws_proto/spot/decision.py: SUPPORT_MARGIN,
NEGATIVE_QUANTILE).  A bank keeps the encoder it was started with: adding with another
encoder is refused.  --replace re-enrols a keyword, --remove deletes one.

--text adds the keyword's text (--spoken TEXT, else the --keyword name) said by --voices
built-in eSpeak NG voices to the support, with or without recorded clips; --confusables N
synthesises N words one phoneme away from it as negatives that cap the threshold
(kws_proto/spot/text.py, kws_proto/spot/confusables.py).  The bank records what was synthesised.

--fa-per-hour R [--background FILE] sets the threshold instead so that the keyword would fire at
most R times an hour on keyword-free audio (FILE from `kws-proto background`; made by the same
encoder; without it, the background the model ships): kws_proto/spot/background.py.

--norm snorm [--background FILE] normalises the keyword's distances against FILE (without it, the
background the model ships) as a cohort (the mean and deviation of its 500 nearest windows;
--norm ratio: their mean as the unit) and sets its threshold at the cohort level --level
(default: the background's own for that normalisation, -3.5 with ratio for the one `default`
ships, else z = -2: two units nearer than its typical nearest other speech), the same for every
keyword of the bank: kws_proto/spot/cohort.py.  Every keyword of a bank is normalised one way
against one cohort, or none is.  --norm auto (the default) normalises as the background says
(`default`'s and one from `kws-proto background`: ratio; one that names none: snorm) when the
model ships a background or --background is given, and neither --threshold, --fa-per-hour nor
--negatives is; a keyword added to a bank follows its keywords.
--norm none: raw distances (the support clips' rule).

--context K [--neighbours DIR] also embeds each clip K times said between the ends of two other
words (clips of DIR; without it, the ones the model ships: `default` does), as a keyword sits in
running speech: their mean is the keyword's twin in context, and a window is scored by the
nearer of the two, the twin cut 0.875 cohort units looser (kws_proto/spot/context.py).
--context auto (the default) gives a normalised keyword 3 such views when neighbours are at
hand, and a keyword added to a bank follows its keywords; --context 0: none.  Measured:
experiments/spotting.md, "A twin in context".

--score maxcos scores a window by its cosine distance to the nearest support clip instead of the
squared distance to the prototype (the threshold rules apply with that distance; one rule per
bank, default: the bank's, `prototype` for a new bank): kws_proto/spot/decision.py.
"""

from __future__ import annotations

from pathlib import Path

from kws_proto.errors import ConfigError
from kws_proto.model.fusion import is_fusion
from kws_proto.model.pretrained import is_shipped
from kws_proto.spot.bank import SCORES
from kws_proto.spot.cohort import NORM_LEVEL, NORMS
from kws_proto.spot.context import CONTEXT_VIEWS, NEIGHBOURS
from kws_proto.spot.enrolment import AUTO, CONTEXT_SHIFT
from kws_proto.spot.frozen import is_frozen
from kws_proto.spot.text import VOICES
from kws_proto.util.cli import nonnegative_float, nonnegative_int, positive_float

NO_NORM = "none"
HELP = "enrol a keyword from a few clips into a keyword bank (or --remove one)"


def add_arguments(p) -> None:
    p.add_argument("items", nargs="*", metavar="RUN_DIR FILE",
                   help="the model (a run directory, `default`, `gse`: the Google speech "
                        "embedding, `gse-head`: the package's head on it, `ewn`: EfficientWord-Net's, "
                        "or a fused model's folder) then the support clips or "
                        "folders; with --model (or an existing bank) all are clips")
    p.add_argument("--bank", type=Path, required=True, help="the keyword bank file (.npz)")
    p.add_argument("--keyword", help="name of the keyword to enrol")
    p.add_argument("--model", default=None,
                   help="a model as the first positional takes it; default: the first positional, or the "
                        "existing bank's own encoder")
    p.add_argument("--negatives", action="append", type=Path, default=[], metavar="DIR",
                   help="a folder (or clip) of other words or noise, which caps the threshold; "
                        "repeat for more")
    p.add_argument("--threshold", type=nonnegative_float, default=None,
                   help="set the rejection threshold (squared distance; with --score maxcos the "
                        "cosine distance) by hand")
    p.add_argument("--fa-per-hour", type=positive_float, default=None, metavar="R",
                   help="set the threshold so that the keyword fires at most R times an hour on "
                        "--background (instead of the support clips' rule)")
    p.add_argument("--background", type=Path, default=None, metavar="FILE",
                   help="keyword-free audio embedded by `kws-proto background` (.npz) for "
                        "--fa-per-hour and --norm; default: the one the model ships, if any")
    p.add_argument("--norm", choices=(AUTO, *NORMS, NO_NORM), default=AUTO,
                   help="`snorm`: normalise the keyword's distances against the background as a "
                        "cohort (`ratio`: in units of its mean); its threshold is then the cohort "
                        "level --level unless --fa-per-hour or --threshold sets it; `none`: raw "
                        "distances; `auto` (default): the background's own normalisation (ratio "
                        "for `default`'s) when the model ships a background or --background is "
                        "given and no other threshold rule is, or as the "
                        "bank's keywords are")
    p.add_argument("--level", type=float, default=None, metavar="Z",
                   help="a normalised keyword's threshold level (default: the background's "
                        f"own for that normalisation, else {NORM_LEVEL:g}; larger accepts more)")
    p.add_argument("--context", type=_context, default=AUTO, metavar="K",
                   help="also embed each clip K times said between two other words (--neighbours), "
                        "as a keyword sits in running speech: its twin in context, cut "
                        f"{CONTEXT_SHIFT:g} units looser; `auto` (default): {CONTEXT_VIEWS} "
                        "for a normalised keyword when the model ships neighbours or --neighbours "
                        "is given, as the bank's keywords in a bank; 0: none")
    p.add_argument("--neighbours", action="append", type=Path, default=None, metavar="DIR",
                   help="with --context: a folder (or clip) of other words, said by other "
                        f"voices (at most {NEIGHBOURS} clips are drawn; repeat for more); "
                        "default: the ones the model ships")
    p.add_argument("--seed", type=nonnegative_int, default=0,
                   help="with --context: the seed drawing the neighbours and their gaps")
    p.add_argument("--score", choices=SCORES, default=None,
                   help="the scoring rule: `prototype` (squared distance to the mean support) or "
                        "`maxcos` (cosine distance to the nearest support clip); default: the "
                        "bank's, `prototype` for a new bank")
    p.add_argument("--text", action="store_true",
                   help="add the keyword's name said by --voices built-in voices to the support")
    p.add_argument("--spoken", default=None, metavar="TEXT",
                   help="with --text: what the keyword says, when its name is not that")
    p.add_argument("--voices", type=int, default=VOICES,
                   help="with --text: built-in voices saying it")
    p.add_argument("--confusables", type=int, default=0, metavar="N",
                   help="N synthesised words one phoneme from the keyword cap the threshold")
    p.add_argument("--replace", action="store_true", help="replace the keyword if it exists")
    p.add_argument("--remove", metavar="KEYWORD", help="remove KEYWORD from the bank and exit")


def _context(text: str):
    """``auto`` or a whole number of views >= 0 (argparse type)."""
    return AUTO if text == AUTO else nonnegative_int(text)


def _split_model(args):
    """``(model spec or None, clip paths)`` from --model and the positionals."""
    items = list(args.items)
    if args.model is not None:
        return args.model, items
    if items and (is_shipped(items[0]) or is_frozen(items[0]) or is_fusion(items[0]) or Path(items[0]).is_dir()
                  and (Path(items[0]) / "config.yaml").is_file()):
        return items[0], items[1:]
    return None, items


def run(args) -> int:
    from kws_proto.spot.bank import load_bank, save_bank  # lazy: --help builds every parser

    if args.remove:
        return _remove(args)
    if not args.keyword:
        raise ConfigError("--keyword NAME is required to enrol (or --remove KEYWORD)")
    model, clips = _split_model(args)
    if args.spoken is not None and not args.text:
        raise ConfigError(f"--spoken {args.spoken!r} needs --text")
    if not clips and not args.text:
        raise ConfigError("no support clips given: `kws-proto enroll RUN_DIR --bank B --keyword K "
                          "FILE...` (or --text)")
    _check_rate(args)
    # a folder or a text file at --bank is refused by load_bank
    bank = load_bank(args.bank) if args.bank.exists() else None
    spotter, bank = _spotter(args, model, clips, bank)
    background = _background(args)
    if args.text or args.confusables:
        text = args.spoken if args.spoken is not None else args.keyword
        kw = spotter.enroll_text(bank, args.keyword, text, args.voices if args.text else 0,
                                 clips=clips, negatives=args.negatives,
                                 confusables=args.confusables, replace=args.replace,
                                 threshold=args.threshold)
    else:
        kw = spotter.enroll(bank, args.keyword, clips, negatives=args.negatives,
                            replace=args.replace, threshold=args.threshold,
                            fa_per_hour=args.fa_per_hour, background=background,
                            score=args.score, norm=None if args.norm == NO_NORM else args.norm,
                            level=args.level, context=args.context, neighbours=args.neighbours,
                            seed=args.seed)
    args.bank.parent.mkdir(parents=True, exist_ok=True)
    save_bank(bank, args.bank)
    _report(kw, bank, args.bank)
    return 0


def _check_rate(args) -> None:
    """--background is for a rate or a cohort, --level for a cohort, and none of them goes with
    --text (yet)."""
    if args.background is not None and (args.fa_per_hour is None and args.norm == NO_NORM):
        raise ConfigError("--background FILE is for --fa-per-hour R or a normalisation (--norm "
                          "snorm, ratio or auto), not for --norm none")
    if args.level is not None and args.norm == NO_NORM:
        raise ConfigError(f"--level {args.level:g} is the threshold of a normalised keyword, "
                          "not of --norm none")
    uses = (args.fa_per_hour is not None or args.norm not in (AUTO, NO_NORM)
            or args.background is not None or args.level is not None)
    if uses and (args.text or args.confusables):
        raise ConfigError("--fa-per-hour, --norm, --background and --level set the threshold of "
                          "recorded clips only: they do not go with --text or --confusables")
    if (args.context not in (AUTO, 0) or args.neighbours) and (args.text or args.confusables):
        raise ConfigError("--context and --neighbours enrol recorded clips only: they do not go "
                          "with --text or --confusables")
    if args.neighbours and args.context == 0:
        raise ConfigError("--neighbours DIR is for views in context (--context K), not for "
                          "--context 0")
    if args.score not in (None, "prototype") and (args.text or args.confusables):
        raise ConfigError(f"--score {args.score}: --text and --confusables enrol with the "
                          "prototype rule")


def _background(args):
    """The --background file, or None."""
    from kws_proto.spot.background import load_background  # lazy: --help builds every parser

    return load_background(args.background) if args.background is not None else None


def _remove(args) -> int:
    """--remove: delete a keyword from the bank."""
    from kws_proto.spot.bank import load_bank, save_bank  # lazy: --help builds every parser

    if args.items or args.keyword:
        raise ConfigError("--remove takes no clips and no --keyword")
    bank = load_bank(args.bank)
    bank.remove(args.remove)
    save_bank(bank, args.bank)
    print(f"removed {args.remove!r} from {args.bank}; it holds {len(bank)} keyword(s): "
          f"{', '.join(bank.names) or 'none'}")
    return 0


def _spotter(args, model, clips, bank):
    """The spotter (the bank's encoder, or ``model``) and the bank (a new one when None)."""
    from kws_proto.spot.spotter import KeywordSpotter  # lazy: --help builds every parser

    if bank is not None:
        return KeywordSpotter.for_bank(bank, model), bank
    if model is None:
        first = Path(clips[0])
        if not first.exists() or first.is_dir():  # it was meant as the new bank's encoder
            why = "no such run directory" if not first.exists() else "not a run directory (no config.yaml)"
            raise ConfigError(f"{first}: {why}; {args.bank} is new, so the first argument names "
                              "its encoder (a run directory or `default`)")
        raise ConfigError(f"{args.bank} does not exist yet: name the encoder, a run directory "
                          "or `default`, as the first argument or with --model")
    spotter = KeywordSpotter.from_model(model)
    return spotter, spotter.new_bank()


def _report(kw, bank, path) -> None:
    """Print what was enrolled and what the bank holds."""
    cal = kw.calibration
    extra = (f"; {cal['negatives']} negatives, {100 * cal['negatives_accepted']:.0f}% of them "
             "within it" if "negatives" in cal else "")
    if "fa_per_hour" in cal:
        extra = (f": {cal['achieved_fa_per_hour']:.4g} reached on "
                 f"{cal['background_hours'] * 60:.4g} min of {cal['background']}")
    if kw.norm is not None:
        extra += (f"; normalised against {kw.norm.source} (its {kw.norm.top} nearest windows: "
                  f"mean {kw.norm.mu:.4g}, unit {kw.norm.sigma:.4g}, {kw.norm.method})")
    if kw.twin is not None:
        extra += (f"; with its twin in context ({kw.twin.views} more views of each clip between "
                  f"other words, cut {kw.twin.shift:g} units looser)")
    synth = cal.get("synthesised", {}).get("clips", 0)
    made = f" ({synth} synthesised)" if synth else ""
    print(f"enrolled {kw.name!r} from {len(kw.clips)} clips{made} into {path}: threshold "
          f"{kw.threshold:.4g} ({cal.get('rule', '')}{extra})")
    print(f"the bank holds {len(bank)} keyword(s): {', '.join(bank.names)}")
