from gammaride.cli import run

run()
