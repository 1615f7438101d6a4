from .metrics import *
from .metrics import read_solution, read_submission, validate_submission, validate_recognition_submission, validate_retrieval_submission, write_recognition_submission, write_retrieval_submission, score_submission, format_scores, lm_score
