from realorders.cli import main

main()
