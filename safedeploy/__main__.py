from safedeploy.cli import main

main()
