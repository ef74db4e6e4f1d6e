"""Text prompts for text-to-video sampling: prompt files, and UCF101's class names turned into prompts.

:data:`CLASSNAME_TEMPLATE` is the one template of zero-shot UCF101 evaluation (``eval --t2v-prompts
classnames``): ``"a video of {action}"``, where ``action`` is the class name of ``classInd.txt``
split into words and lower-cased (``ApplyEyeMakeup`` -> ``"a video of apply eye makeup"``). It is
mechanical on purpose, so that the 101 prompts follow from the class list alone (docs/t2v.md).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Sequence

from latte_bench.errors import UserError

CLASSNAME_TEMPLATE = "a video of {action}"

# UCF101's 101 action classes in the order of its classInd.txt (label k = line k + 1 there)
UCF101_CLASSES = (
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching", "BaseballPitch",
    "Basketball", "BasketballDunk", "BenchPress", "Biking", "Billiards", "BlowDryHair", "BlowingCandles",
    "BodyWeightSquats", "Bowling", "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke", "BrushingTeeth",
    "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot", "CuttingInKitchen", "Diving", "Drumming",
    "Fencing", "FieldHockeyPenalty", "FloorGymnastics", "FrisbeeCatch", "FrontCrawl", "GolfSwing", "Haircut",
    "Hammering", "HammerThrow", "HandstandPushups", "HandstandWalking", "HeadMassage", "HighJump", "HorseRace",
    "HorseRiding", "HulaHoop", "IceDancing", "JavelinThrow", "JugglingBalls", "JumpingJack", "JumpRope",
    "Kayaking", "Knitting", "LongJump", "Lunges", "MilitaryParade", "Mixing", "MoppingFloor", "Nunchucks",
    "ParallelBars", "PizzaTossing", "PlayingCello", "PlayingDaf", "PlayingDhol", "PlayingFlute", "PlayingGuitar",
    "PlayingPiano", "PlayingSitar", "PlayingTabla", "PlayingViolin", "PoleVault", "PommelHorse", "PullUps",
    "Punch", "PushUps", "Rafting", "RockClimbingIndoor", "RopeClimbing", "Rowing", "SalsaSpin", "ShavingBeard",
    "Shotput", "SkateBoarding", "Skiing", "Skijet", "SkyDiving", "SoccerJuggling", "SoccerPenalty", "StillRings",
    "SumoWrestling", "Surfing", "Swing", "TableTennisShot", "TaiChi", "TennisSwing", "ThrowDiscus",
    "TrampolineJumping", "Typing", "UnevenBars", "VolleyballSpiking", "WalkingWithDog", "WallPushups",
    "WritingOnBoard", "YoYo",
)
CLASS_NAMES = {"ucf101": UCF101_CLASSES}


def class_words(name: str) -> str:
    """``"ApplyEyeMakeup"`` -> ``"apply eye makeup"``: split before each capital that starts a word, lower-case."""
    return " ".join(re.findall(r"[A-Z]+[a-z]*|[a-z]+|\d+", name)).lower()


def class_prompt(name: str, template: str = CLASSNAME_TEMPLATE) -> str:
    """The prompt for one class name under ``template`` (``{action}`` is :func:`class_words`)."""
    return template.format(action=class_words(name))


def classname_prompts(dataset: str | None) -> list[str]:
    """One prompt per class of ``dataset``, in label order (``ucf101`` only: the one dataset with classes)."""
    if dataset not in CLASS_NAMES:
        raise UserError(f"--t2v-prompts classnames needs --dataset ucf101 (the dataset with class names), not {dataset!r}; "
                        "pass --t2v-prompts FILE (one prompt per line) instead")
    return [class_prompt(name) for name in CLASS_NAMES[dataset]]


def read_prompt_file(path: str | os.PathLike) -> list[str]:
    """The prompts of a UTF-8 text file, one per line; blank lines are skipped. An empty file is refused."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"{path}: cannot read the prompts ({type(e).__name__}); pass a UTF-8 text file, one prompt per line") from None
    prompts = [line.strip() for line in lines if line.strip()]
    if not prompts:
        raise UserError(f"{path}: no prompts (every line is blank); write one prompt per line")
    return prompts


def prompts_sha256(prompts: Sequence[str]) -> str:
    """sha256 of the prompts joined by newlines (UTF-8): which texts a set of videos was made from."""
    return hashlib.sha256("\n".join(prompts).encode("utf-8")).hexdigest()
