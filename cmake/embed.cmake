# Turns the file IN into a C source OUT defining es_config_default_yaml[] (NUL-terminated) and
# es_config_default_yaml_len (bytes, without the NUL). Run with cmake -P.
file(READ ${IN} hex HEX)
string(LENGTH "${hex}" hexlen)
math(EXPR len "${hexlen} / 2")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "(0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,0x..,)" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* Generated from conf/estuary.yaml by cmake/embed.cmake; do not edit. */\n"
  "#include <stddef.h>\n"
  "const char es_config_default_yaml[] = {\n${body}0x00};\n"
  "const size_t es_config_default_yaml_len = ${len};\n")
