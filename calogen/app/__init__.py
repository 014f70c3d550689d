"""What the app's pages share that needs no Streamlit: the view state the URL carries (:mod:`calogen.app.state`)
and the sentences and numbers the pages show (:mod:`calogen.app.texts`).

Degrees appear here and in the command line only; :func:`calogen.app.state.to_radians` and
:func:`calogen.app.state.to_degrees` are the app's one conversion. Widgets live in the ``pages`` package.
"""
