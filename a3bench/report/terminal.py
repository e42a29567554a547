"""``--format term``: the boards in the terminal, and a model's whole report when there is
one result. Writes no file: the CLI prints the pages (:mod:`a3bench.report.render_term`)."""

from __future__ import annotations

from a3bench.report.formats import ReportFormat, ReportJob, ReportOutput
from a3bench.report.leaderboard import BoardLinks, group_results, leaderboard_page
from a3bench.report.sections import PageLinks, model_page


def write(job: ReportJob) -> ReportOutput:
    # No links in a terminal: a paper or folder link would only add its label.
    pages = [leaderboard_page(group_results(job.results, job.published, job.rank_all), BoardLinks(paper=lambda link: None))]
    if len(job.results) == 1:
        res = job.results[0]
        pages.append(model_page(res, PageLinks(record=str(res.path))))
    return ReportOutput(None, documents=pages)


FORMAT = ReportFormat("term", write, lambda paths: None, out_is="none")
