"""Results: metrics and chance levels, the HTML report, run comparison."""
