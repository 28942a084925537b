"""The course's own tooling, apart from the library the notebooks import.

- catalog     what each notebook teaches and how long it runs on full FER2013
- handouts    the learners' copies: every solution replaced by a stub
- offline     the MathJax and reveal.js files the web pages use, copied from installed packages
- site        the executed notebooks as web pages and reveal.js decks (`python3 tasks.py site`)
- slideshow   the slide tags of every notebook cell (`python -m fer_helpers.course.slideshow`)
"""
