from concsim.cli import main

main()
