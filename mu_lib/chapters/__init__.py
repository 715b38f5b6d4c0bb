"""One module per book chapter: the runs a chapter needs, its tables, figures and statement
checks, as tested functions.  The notebooks keep the prose and a few lines that call these."""
