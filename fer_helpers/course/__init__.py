"""The course's own tooling, apart from the library the notebooks import.

- catalog     what each notebook teaches and how long it runs on full FER2013
- demo        the site's live demo: the exported model in the browser (onnxruntime-web)
- handouts    the learners' copies: every solution replaced by a stub
- kernels     a notebook client whose kernel channels ask again (nbclient#312)
- offline     the MathJax and reveal.js files the web pages use, copied from installed packages
- site        the executed notebooks as web pages and reveal.js decks (`python3 tasks.py site`)
- slideshow   the slide tags of every notebook cell (`python -m fer_helpers.course.slideshow`)
"""
