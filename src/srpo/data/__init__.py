"""Problem records: schema, sources (files, datasets folders, NAME@SPLIT), loaders/writers, the lazy Arrow problem
table, image checks against a model's processor, and procedural synthetic problems."""

from srpo.data.images import ImageRejection, check_images, reject_images, report_refusals
from srpo.data.loaders import LoadReport, load_problems, row_to_problem, save_problems
from srpo.data.problem_dataset import (
    checked_images,
    image_files_stamp,
    problem_dataset,
    problems_to_dataset,
    row_error,
)
from srpo.data.schema import ANSWER_TYPES, CHOICE_LETTERS, Problem, ProblemError, question_with_choices
from srpo.data.sources import DataError, load_split, rename_columns, split_spec
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
    "checked_images",
    "generate_problems",
    "image_files_stamp",
    "load_problems",
    "load_split",
    "problem_dataset",
    "problems_to_dataset",
    "question_with_choices",
    "reject_images",
    "rename_columns",
    "report_refusals",
    "row_error",
    "row_to_problem",
    "save_problems",
    "split_spec",
    "write_synthetic",
]
