"""Problem records: schema, loaders/writers, image checks against a model's processor, and procedural synthetic
problems."""

from srpo.data.images import ImageRejection, check_images, reject_images
from srpo.data.loaders import (
    DataError,
    LoadReport,
    load_problems,
    problems_to_dataset,
    row_to_problem,
    save_problems,
)
from srpo.data.schema import ANSWER_TYPES, CHOICE_LETTERS, Problem, ProblemError, question_with_choices
from srpo.data.synthetic import FAMILIES, generate_problems, write_synthetic

__all__ = [
    "ANSWER_TYPES",
    "CHOICE_LETTERS",
    "DataError",
    "FAMILIES",
    "ImageRejection",
    "LoadReport",
    "Problem",
    "ProblemError",
    "check_images",
    "generate_problems",
    "load_problems",
    "problems_to_dataset",
    "question_with_choices",
    "reject_images",
    "row_to_problem",
    "save_problems",
    "write_synthetic",
]
