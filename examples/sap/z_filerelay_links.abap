*&---------------------------------------------------------------------*
*& Report Z_FILERELAY_LINKS
*&---------------------------------------------------------------------*
*& Tells FileRelay which business object each archived document belongs
*& to. SAP writes that link into its link tables (TOA01-TOA03) when a
*& document is assigned; ArchiveLink's create never carries it. This
*& report reads the links of one content repository written since its
*& last run and posts them in batches to
*&   POST <SM59 path prefix>/documents/metadata
*& (path prefix /api/<owner>/<workspace>), with a member API key.
*& The JSON it builds is examples/sap/links_payload.json in FileRelay.
*& Schedule it in SM36 after the archiving jobs (e.g. hourly). Links of
*& the last run's day are sent again: FileRelay takes a repeat as a
*& no-op, so nothing is lost between two runs of one day.
*&---------------------------------------------------------------------*
REPORT z_filerelay_links.

PARAMETERS: p_arch  TYPE toa01-archiv_id OBLIGATORY,   " content repository
            p_dest  TYPE rfcdest OBLIGATORY,           " SM59, type G
            p_keyv  TYPE rvari_vnam DEFAULT 'Z_FILERELAY_API_KEY' OBLIGATORY,
            p_from  TYPE sy-datum,                     " empty: since last run
            p_batch TYPE i DEFAULT 500,
            p_dry   AS CHECKBOX DEFAULT 'X'.

TYPES: BEGIN OF ty_link,
         mandt      TYPE toa01-mandt,
         sap_object TYPE toa01-sap_object,
         object_id  TYPE toa01-object_id,
         archiv_id  TYPE toa01-archiv_id,
         arc_doc_id TYPE toa01-arc_doc_id,
         ar_object  TYPE toa01-ar_object,
         ar_date    TYPE toa01-ar_date,
       END OF ty_link,
       ty_links TYPE STANDARD TABLE OF ty_link WITH EMPTY KEY,
       BEGIN OF ty_error,
         detail TYPE string,
       END OF ty_error,
       ty_errors TYPE STANDARD TABLE OF ty_error WITH EMPTY KEY,
       BEGIN OF ty_result,
         repo_id TYPE string,
         doc_id  TYPE string,
         status  TYPE i,
         errors  TYPE ty_errors,
       END OF ty_result,
       BEGIN OF ty_answer,
         data TYPE STANDARD TABLE OF ty_result WITH EMPTY KEY,
       END OF ty_answer.

CLASS lcl_links DEFINITION.
  PUBLIC SECTION.
    CLASS-DATA gv_failed TYPE i.       " links FileRelay refused
    CLASS-METHODS:
      json IMPORTING iv_text TYPE csequence RETURNING VALUE(rv_json) TYPE string,
      payload IMPORTING it_links TYPE ty_links RETURNING VALUE(rv_json) TYPE string,
      post IMPORTING iv_json TYPE string iv_key TYPE csequence
           RETURNING VALUE(rv_ok) TYPE abap_bool.
ENDCLASS.

CLASS lcl_links IMPLEMENTATION.
  METHOD json.
    " A CHAR field as a string loses its trailing blanks, not the inner ones of an object key.
    rv_json = |"{ escape( val = iv_text format = cl_abap_format=>e_json_string ) }"|.
  ENDMETHOD.

  METHOD payload.
    DATA lt_entries TYPE string_table.
    LOOP AT it_links INTO DATA(ls_link).
      APPEND |\{"repo_id":{ json( ls_link-archiv_id ) },"doc_id":{ json( ls_link-arc_doc_id ) },|
          && |"metadata":\{"sap_object_type":{ json( ls_link-sap_object ) },|
          && |"sap_object_id":{ json( ls_link-object_id ) },"ar_object":{ json( ls_link-ar_object ) },|
          && |"client":{ json( ls_link-mandt ) },"ar_date":{ json( |{ ls_link-ar_date DATE = ISO }| ) }\}\}|
          TO lt_entries.
    ENDLOOP.
    rv_json = |\{"entries":[{ concat_lines_of( table = lt_entries sep = `,` ) }]\}|.
  ENDMETHOD.

  METHOD post.
    DATA: lo_http   TYPE REF TO if_http_client,
          ls_answer TYPE ty_answer.
    cl_http_client=>create_by_destination( EXPORTING destination = p_dest
                                           IMPORTING client = lo_http
                                           EXCEPTIONS OTHERS = 1 ).
    IF sy-subrc <> 0.
      WRITE: / |HTTP destination { p_dest } cannot be used (SM59)|.
      RETURN.
    ENDIF.
    cl_http_utility=>set_request_uri( request = lo_http->request uri = '/documents/metadata' ).
    lo_http->request->set_method( 'POST' ).
    lo_http->request->set_header_field( name = 'Authorization' value = |Bearer { iv_key }| ).
    lo_http->request->set_content_type( 'application/json; charset=utf-8' ).
    lo_http->request->set_cdata( iv_json ).
    lo_http->send( EXCEPTIONS OTHERS = 1 ).
    IF sy-subrc = 0.
      lo_http->receive( EXCEPTIONS OTHERS = 1 ).
    ENDIF.
    IF sy-subrc <> 0.
      lo_http->get_last_error( IMPORTING message = DATA(lv_message) ).
      WRITE: / |FileRelay not reached: { lv_message }|.
      lo_http->close( ).
      RETURN.
    ENDIF.
    lo_http->response->get_status( IMPORTING code = DATA(lv_code) ).
    DATA(lv_body) = lo_http->response->get_cdata( ).
    lo_http->close( ).
    IF lv_code <> 200.                " 400 malformed, 401/403 key, 5xx
      WRITE: / |HTTP { lv_code }: { lv_body }|.
      RETURN.
    ENDIF.
    /ui2/cl_json=>deserialize( EXPORTING json = lv_body CHANGING data = ls_answer ).
    LOOP AT ls_answer-data INTO DATA(ls_result) WHERE status <> 200.
      gv_failed = gv_failed + 1.      " 400 invalid, 404 unknown, 409 deleted
      WRITE: / |{ ls_result-repo_id } { ls_result-doc_id }: { ls_result-status }|.
      LOOP AT ls_result-errors INTO DATA(ls_error).
        WRITE: / |    { ls_error-detail }|.
      ENDLOOP.
    ENDLOOP.
    rv_ok = abap_true.
  ENDMETHOD.
ENDCLASS.

AT SELECTION-SCREEN.
  IF p_batch < 1 OR p_batch > 1000.
    MESSAGE 'Batch size: 1 to 1000 links' TYPE 'E'.
  ENDIF.

START-OF-SELECTION.
  DATA: lt_links  TYPE ty_links,
        lt_batch  TYPE ty_links,
        lv_ok     TYPE abap_bool VALUE abap_true.
  DATA(lv_today) = sy-datum.
  DATA(lv_last) = CONV rvari_vnam( |Z_FILERELAY_LAST_{ p_arch }| ).

  IF p_from IS INITIAL.               " since the last successful run
    SELECT SINGLE low FROM tvarvc INTO @DATA(lv_low)
      WHERE name = @lv_last AND type = 'P' AND numb = '0000'.
    p_from = COND #( WHEN sy-subrc = 0 THEN CONV d( lv_low ) ELSE '19000101' ).
  ENDIF.
  SELECT SINGLE low FROM tvarvc INTO @DATA(lv_key)
    WHERE name = @p_keyv AND type = 'P' AND numb = '0000'.
  IF sy-subrc <> 0 AND p_dry = abap_false.
    MESSAGE |No API key in TVARVC variable { p_keyv }| TYPE 'E'.
  ENDIF.

  SELECT mandt, sap_object, object_id, archiv_id, arc_doc_id, ar_object, ar_date
    FROM toa01 WHERE archiv_id = @p_arch AND ar_date >= @p_from
    APPENDING CORRESPONDING FIELDS OF TABLE @lt_links.
  SELECT mandt, sap_object, object_id, archiv_id, arc_doc_id, ar_object, ar_date
    FROM toa02 WHERE archiv_id = @p_arch AND ar_date >= @p_from
    APPENDING CORRESPONDING FIELDS OF TABLE @lt_links.
  SELECT mandt, sap_object, object_id, archiv_id, arc_doc_id, ar_object, ar_date
    FROM toa03 WHERE archiv_id = @p_arch AND ar_date >= @p_from
    APPENDING CORRESPONDING FIELDS OF TABLE @lt_links.
  " A document linked twice: its latest link is sent last, and wins.
  SORT lt_links BY ar_date arc_doc_id.
  WRITE: / |{ lines( lt_links ) } links of { p_arch } since { p_from DATE = ISO }|.

  LOOP AT lt_links INTO DATA(ls_link).
    DATA(lv_index) = sy-tabix.
    APPEND ls_link TO lt_batch.
    IF lines( lt_batch ) = p_batch OR lv_index = lines( lt_links ).
      DATA(lv_json) = lcl_links=>payload( lt_batch ).
      IF p_dry = abap_true.
        WRITE: / |Dry run, { lines( lt_batch ) } links, not sent:|, / lv_json.
      ELSEIF lcl_links=>post( iv_json = lv_json iv_key = lv_key ) = abap_false.
        lv_ok = abap_false.
        EXIT.                         " the next run starts from the same day
      ENDIF.
      CLEAR lt_batch.
    ENDIF.
  ENDLOOP.

  IF p_dry = abap_false AND lv_ok = abap_true.
    DATA(ls_var) = VALUE tvarvc( name = lv_last type = 'P' numb = '0000' low = lv_today ).
    MODIFY tvarvc FROM ls_var.
    COMMIT WORK.
    WRITE: / |Sent; { lcl_links=>gv_failed } links refused (listed above). Next run from { lv_today DATE = ISO }|.
  ELSEIF lv_ok = abap_false.
    MESSAGE 'FileRelay refused a batch; see the list. Last run date unchanged' TYPE 'E'.
  ENDIF.
