"""Result tables: no number the book shows is rounded out of existence."""

import pandas as pd

from mu_lib.report import style_table


def test_table_keeps_learning_rates_and_small_ou_readable():
    df = pd.DataFrame({"relearn lr": [3e-4, 1e-2], "acc_f": [1.234, 2.0], "ou_pgd": [0.0123, 0.1]})
    html = style_table(df).to_html()
    assert ">3e-04<" in html and ">1e-02<" in html  # two decimals would print 0.00
    assert ">1.23<" in html and ">0.0123<" in html
