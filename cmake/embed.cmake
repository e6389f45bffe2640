# embed.cmake - turn a text file into a C string constant (run with cmake -P).
# -DINPUT=file -DOUTPUT=file.c -DNAME=symbol
file(READ ${INPUT} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUTPUT} "/* generated from ${INPUT}; do not edit */\nconst char ${NAME}[] = {${bytes} 0x00};\n")
