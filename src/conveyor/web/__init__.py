"""The web console: watch, run and fix generation work in a browser, offline.

Server-rendered pages (Jinja2 templates) with htmx and one small script of our own, every
file served from ``static/`` (versions and SHA-256 in ``static/VENDORED.md``; no CDN). Pages
read through the same services as the API and show a person only their own client's work;
live progress comes from the jobs' event streams, with polling where a stream cannot stay
open. Without JavaScript every form still works (post, then redirect).

Where things are: ``session.py`` decides who is looking (cookie, CSRF token, admin);
``routing.py`` how every console route answers (error pages, security headers);
``pages.py``, ``actions.py`` and ``live.py`` the routes (pages, forms, streams and files);
``service.py`` and ``views.py`` what pages show; ``forms.py`` forms built from declared
inputs; ``thumbnails.py`` the gallery's cached thumbnails; ``mount.py`` adds it all to the app.
"""
