"""A training recipe: every choice that shapes a model, in one frozen, JSON-friendly record."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from kiosk.scoring import KINDS

# The door's operating point: at most 1 impostor pair in 100 accepted on held-out people.
# A grant also needs several consecutive frames to agree (kiosk decision policy), which
# multiplies down the per-attempt false-accept rate; a stricter per-frame rate would turn
# away too many enrolled people at this model's true-accept rate (see the model card).
DEFAULT_TARGET_FAR = 0.01

LOSSES = ("pair_bce", "contrastive", "triplet", "semihard", "cosface")
SAMPLINGS = ("uniform", "capped")
SCORINGS = KINDS
# `init` naming dlib's face-recognition ResNet with dlib's weights (training.dlib_init) rather than
# a weights file: it takes dlib's 150 px chip (training.dlib_resnet.CHIP_SIZE) and gives 128 numbers.
DLIB_INIT = "dlib"
DLIB_INPUT_SIZE = 150
DLIB_EMBEDDING_SIZE = 128


class RecipeError(ValueError):
    """A recipe that cannot be trained (an unknown option value or options that do not go together)."""


@dataclass(frozen=True)
class Recipe:
    loss: str = "triplet"
    augment: bool = True
    # A pretrained backbone: a weights file of this project's network, or DLIB_INIT (None: from scratch).
    init: str | None = None
    freeze: bool = False  # with `init`: train only the embedding layers on top of frozen features
    # With `init`, not frozen: the learning rate of the pretrained layers, so that they move less than
    # the new layers on top (a pair head, dlib's embedding head), which learn at `learning_rate`.
    # None: one learning rate for all.
    backbone_learning_rate: float | None = None
    input_size: int = 64
    embedding_size: int = 128
    widths: tuple[int, ...] = (32, 64, 128, 160)  # channels of the stem/stages; about 1.1 M weights, 4.6 MB
    epochs: int = 30  # 0, with `init`: the pretrained backbone as it is, nothing trained
    steps_per_epoch: int = 100
    identities_per_batch: int = 32
    images_per_identity: int = 4
    learning_rate: float = 2e-3
    weight_decay: float = 5e-4
    margin: float | None = None  # None: the loss's own default
    patience: int = 6
    seed: int = 0
    # Which people are held out for validation (and the validation pairs); None: `seed`. Fixing it
    # while `seed` varies compares seeds on one validation slice (paired), and lets runs of several
    # seeds teach one student.
    split_seed: int | None = None
    # People need this many training images to be trained on. 1 adds DevTrain's single-photo
    # people: useless as triplet positives, but extra classes (and negatives) for a margin softmax.
    min_images: int = 2
    # How a batch picks its P people: "uniform" (every person alike) or "capped" (in proportion
    # to their images, capped at K), so one-photo people do not fill most of a batch.
    sampling: str = "uniform"
    # Compute in bfloat16 (weights, loss and evaluation stay float32): on a 2-core AVX512-BF16 CPU
    # a training step ran 1.35x faster, a whole run 1.11x (the augmentation shares the cores);
    # slower where bfloat16 is emulated.
    mixed_precision: bool = False
    # Chance that a training image gets a flat-coloured occluder over 2-20% of it (augment.py);
    # 0 leaves the webcam augmentation as it was.
    occlusion_prob: float = 0.0
    # Chance that a training image gets dark lenses over both eyes (augment.py): sunglasses were
    # on 7 of the 24 worst-scored same-person DevTest pairs. 0 leaves them out.
    sunglasses_prob: float = 0.0
    # Validate and keep an exponential moving average of the weights (updated after every step)
    # instead of the weights themselves: an average over the last ~1 / (1 - decay) steps, a cheap
    # cousin of an ensemble. 0 keeps the weights as trained.
    ema_decay: float = 0.0
    # Run folders of finished models (teachers) whose mean cosine between every two images of a
    # batch the network also learns to match (losses.relational_distillation_loss), weighted by
    # `distill_weight` against the recipe's own loss: an ensemble's knowledge in one network.
    distill_from: tuple[str, ...] = ()
    distill_weight: float = 10.0
    # An online teacher: DLIB_INIT has dlib's ResNet embed every augmented view in the same training
    # step, and the network learns its embedding (their cosine, centred: training.train) and its
    # cosines between the batch's images (losses.relational_distillation_loss), both weighted by
    # `distill_weight`, besides its own loss. The network then sees dlib's 150 px crops (training.dlib_init.prepared_crops).
    teacher: str | None = None
    # The network average-pools its input by this factor before its first convolution, inside the
    # model: a 150 px crop seen at 75 px costs a quarter of the pixels, and the exported model still
    # takes the crop as the aligner cuts it (no resize outside it).
    input_pool: int = 1
    # Batch-hard triplets also look for each anchor's nearest impostor among the embeddings of the
    # last `memory_batches` batches (cross-batch memory, losses.CrossBatchMemory); 0 is off.
    memory_batches: int = 0
    # How two embeddings are scored (kiosk.scoring): "cosine", or a back end fitted after training
    # (training.backend): "joint-bayesian", "as-norm", "cosine+texture".
    scoring: str = "cosine"

    def __post_init__(self) -> None:
        if self.loss not in LOSSES:
            raise RecipeError(f"unknown loss {self.loss!r}; choose one of {', '.join(LOSSES)}")
        if self.freeze and not self.init:
            raise RecipeError("--freeze needs --init: there is nothing pretrained to freeze")
        if self.epochs < 0 or (self.epochs == 0 and not self.init):
            raise RecipeError("epochs must be 1 or more (0 only with --init: the pretrained backbone as it is)")
        if self.backbone_learning_rate is not None and (not self.init or self.freeze):
            raise RecipeError("--backbone-learning-rate needs --init without --freeze: it is the pretrained layers' rate")
        if self.init == DLIB_INIT:
            if (self.input_size, self.embedding_size) != (DLIB_INPUT_SIZE, DLIB_EMBEDDING_SIZE):
                raise RecipeError(f"--init {DLIB_INIT} takes {DLIB_INPUT_SIZE} px crops and gives {DLIB_EMBEDDING_SIZE} "
                                 f"numbers: use --input-size {DLIB_INPUT_SIZE} --embedding-size {DLIB_EMBEDDING_SIZE}")
            if self.mixed_precision:
                raise RecipeError(f"--init {DLIB_INIT} trains in float32 only (drop --mixed-precision)")
        self._check_teacher()
        if self.scoring not in SCORINGS:
            raise RecipeError(f"unknown scoring {self.scoring!r}; choose one of {', '.join(SCORINGS)}")
        if self.sampling not in SAMPLINGS:
            raise RecipeError(f"unknown sampling {self.sampling!r}; choose one of {', '.join(SAMPLINGS)}")
        if self.min_images < 1:
            raise RecipeError("min_images must be at least 1")
        if not 0.0 <= self.occlusion_prob <= 1.0:
            raise RecipeError(f"occlusion_prob must be a probability in [0, 1], got {self.occlusion_prob!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise RecipeError(f"ema_decay must be in [0, 1), got {self.ema_decay!r}")
        if self.memory_batches < 0:
            raise RecipeError(f"memory_batches must be 0 (off) or more, got {self.memory_batches!r}")
        if self.memory_batches and self.loss != "triplet":
            raise RecipeError("a cross-batch memory (--memory-batches) works with --loss triplet only")
        if self.distill_weight <= 0.0:
            raise RecipeError(f"distill_weight must be positive, got {self.distill_weight!r}")
        if not 0.0 <= self.sunglasses_prob <= 1.0:
            raise RecipeError(f"sunglasses_prob must be a probability in [0, 1], got {self.sunglasses_prob!r}")
        if (self.occlusion_prob or self.sunglasses_prob) and not self.augment:
            raise RecipeError("an occlusion or sunglasses probability needs augmentation on (drop --no-augment)")

    def _check_teacher(self) -> None:
        if self.input_pool < 1 or self.input_size % self.input_pool:
            raise RecipeError(f"--input-pool must be 1 or more and divide --input-size ({self.input_size}), "
                             f"got {self.input_pool}")
        if self.input_pool > 1 and self.init == DLIB_INIT:
            raise RecipeError(f"--input-pool is for this project's network, not --init {DLIB_INIT}")
        if self.teacher is None:
            return
        if self.teacher != DLIB_INIT:
            raise RecipeError(f"unknown teacher {self.teacher!r}; the online teacher is {DLIB_INIT!r}")
        if self.init == DLIB_INIT or self.distill_from:
            raise RecipeError(f"--teacher {DLIB_INIT} teaches this project's network from scratch: drop --init "
                             f"{DLIB_INIT} and --distill-from")
        if (self.input_size, self.embedding_size) != (DLIB_INPUT_SIZE, DLIB_EMBEDDING_SIZE):
            raise RecipeError(f"--teacher {DLIB_INIT} shows the network dlib's {DLIB_INPUT_SIZE} px crops and its "
                             f"{DLIB_EMBEDDING_SIZE} numbers: use --input-size {DLIB_INPUT_SIZE} --embedding-size "
                             f"{DLIB_EMBEDDING_SIZE} (and --input-pool to work on fewer pixels)")

    @property
    def held_out_seed(self) -> int:
        """The seed that chooses the validation people and pairs."""
        return self.seed if self.split_seed is None else self.split_seed

    @property
    def name(self) -> str:
        origin = "dlib-" if self.init == DLIB_INIT else ""
        if self.epochs == 0:
            return f"{origin or 'pretrained-'}as-is"
        start = "scratch" if not self.init else ("frozen" if self.freeze else "finetuned")
        return (f"{self.loss}-{'aug' if self.augment else 'noaug'}-{origin}{start}"
                + ("-distilled" if self.distill_from else "") + (f"-taught-by-{self.teacher}" if self.teacher else ""))

    def as_json(self) -> dict:
        """The recipe as a run's summary.json stores it (JSON turns tuples into lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_json(cls, recorded: dict) -> "Recipe":
        """The recipe a run's summary.json recorded (the inverse of `as_json`)."""
        return cls(**{**recorded, "widths": tuple(recorded["widths"]),
                      "distill_from": tuple(recorded.get("distill_from", ()))})
